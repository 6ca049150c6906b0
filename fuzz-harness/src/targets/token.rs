//! A token, as the server verifies it: an access token on join (`Claims::verify`) and a
//! server-API bearer token (`ApiClaims::verify`), both with a fixed key and clock; and as a
//! client reads an access token (`Claims::peek_unverified`). Whatever verifies must hold valid
//! claims for the key that signed it.

use aula_protocol::api::ApiClaims;
use aula_protocol::Claims;

/// The key and secret the seed tokens are signed with (`aula_server::DEV_API_KEY`).
const KEY: &str = "devkey";
const SECRET: &str = "devsecret";
/// A moment before the seed tokens expire (expiry is checked, issue time is not).
const NOW: u64 = 1_700_000_000;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Claims::peek_unverified(token);
    let secret_for = |key: &str| (key == KEY).then_some(SECRET);
    if let Ok(claims) = Claims::verify(token, secret_for, NOW) {
        assert_eq!(claims.iss, KEY);
        assert!(claims.validate().is_ok(), "verified claims are valid");
        assert!(claims.exp > NOW);
    }
    if let Ok(claims) = ApiClaims::verify(token, secret_for, NOW) {
        assert_eq!(claims.iss, KEY);
        assert!(claims.validate(NOW).is_ok(), "verified claims are valid");
    }
}
