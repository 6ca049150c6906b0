//! A client of the server API (`/api/v1`): HTTP + JSON, each request authenticated with a
//! short-lived server token minted from the API key and secret.

use std::time::Duration;

use aula_protocol::api::{ApiClaims, API_PREFIX};
use aula_protocol::token::unix_now;
use reqwest::{Method, Url};
use serde_json::Value;

/// Lifetime of the server token minted for each request, seconds.
const TOKEN_TTL_SECS: u64 = 300;
/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API call failed.
#[derive(Debug)]
pub enum ApiFailure {
    /// The server refused the request: its HTTP status and its error body.
    Refused {
        /// The server's error code (`unknown_participant`, ...).
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The server could not be reached.
    Unreachable(String),
    /// Something answered, but not as the server API does (or the token could not be made).
    Unexpected(String),
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFailure::Refused { code, message, .. } => write!(f, "{code}: {message}"),
            ApiFailure::Unreachable(why) => write!(f, "cannot reach the server: {why}"),
            ApiFailure::Unexpected(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ApiFailure {}

/// The server API of one server.
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    api_key: String,
    api_secret: String,
}

/// The API's base URL from what a user may give: `http(s)://host:port[/prefix]`, or the
/// `ws(s)://` URL clients join with (a trailing `/rtc` is dropped).
pub fn base_url(url: &str) -> Result<Url, String> {
    let mut parsed = Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let scheme = match parsed.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => {
            return Err(format!(
                "{url:?}: the server URL is http://, https://, ws:// or wss://, not {other}://"
            ))
        }
    };
    // Switching between these special schemes is always allowed.
    parsed
        .set_scheme(scheme)
        .map_err(|()| format!("cannot use {url:?} as an http URL"))?;
    if parsed.host().is_none() {
        return Err(format!("{url:?} names no host"));
    }
    let path = parsed.path().trim_end_matches('/').to_owned();
    let path = path.strip_suffix("/rtc").unwrap_or(&path).to_owned();
    parsed.set_path(&path);
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed)
}

impl ApiClient {
    /// A client for the server at `url` (see [`base_url`]) with this API key and secret.
    pub fn new(url: &str, api_key: &str, api_secret: &str) -> Result<Self, ApiFailure> {
        let base = base_url(url).map_err(ApiFailure::Unexpected)?;
        // rustls needs a process-wide crypto provider for https://; installing fails harmlessly
        // when one is set already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("aula-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiFailure::Unexpected(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
        })
    }

    /// The URL of `segments` under the API prefix (each segment percent-encoded), with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(API_PREFIX.split('/').filter(|s| !s.is_empty()));
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        url
    }

    /// A server token for one request, limited to `room` when given.
    fn token(&self, room: Option<&str>) -> Result<String, ApiFailure> {
        let mut claims = ApiClaims::new(&self.api_key, unix_now(), TOKEN_TTL_SECS);
        claims.room = room.map(str::to_owned);
        claims
            .sign(&self.api_secret)
            .map_err(|e| ApiFailure::Unexpected(format!("cannot make a server token: {e}")))
    }

    /// Sends one request and returns the JSON the server answered. `room` limits the token
    /// to that room (the least a call needs).
    pub async fn call(
        &self,
        method: Method,
        room: Option<&str>,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let url = self.url(segments, query);
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(self.token(room)?);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiFailure::Unreachable(format!("{}: {}", self.base, error_chain(&e))))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiFailure::Unreachable(format!("reading the answer: {e}")))?;
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return json.ok_or_else(|| {
                ApiFailure::Unexpected(format!(
                    "{url} answered HTTP {status} without JSON: is this an Aula server?"
                ))
            });
        }
        match json.as_ref().and_then(|j| {
            Some((
                j.get("code")?.as_str()?.to_owned(),
                j.get("message")?.as_str().unwrap_or_default().to_owned(),
            ))
        }) {
            Some((code, message)) => Err(ApiFailure::Refused { code, message }),
            None => Err(ApiFailure::Unexpected(format!(
                "{url} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }
}

/// An error with its causes, which name the actual failure (refused connection, DNS, TLS).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_and_http_urls_give_the_api_base() {
        let url = |u: &str| base_url(u).map(|u| u.to_string());
        assert_eq!(
            url("ws://127.0.0.1:7880"),
            Ok("http://127.0.0.1:7880/".into())
        );
        assert_eq!(
            url("wss://aula.example/rtc"),
            Ok("https://aula.example/".into())
        );
        assert_eq!(
            url("https://example.org/aula/"),
            Ok("https://example.org/aula".into())
        );
        assert!(url("ftp://example.org").is_err());
        assert!(url("not a url").is_err());
    }

    #[test]
    fn identities_are_encoded_as_one_path_segment() {
        let client = ApiClient::new("ws://127.0.0.1:7880/", "k", "s").unwrap();
        let url = client.url(
            &["rooms", "math 1", "participants", "a/b?c", "admit"],
            &[("limit", "5".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7880/api/v1/rooms/math%201/participants/a%2Fb%3Fc/admit?limit=5"
        );
        let prefixed = ApiClient::new("https://example.org/aula", "k", "s").unwrap();
        assert_eq!(
            prefixed.url(&["rooms"], &[]).as_str(),
            "https://example.org/aula/api/v1/rooms"
        );
    }
}
