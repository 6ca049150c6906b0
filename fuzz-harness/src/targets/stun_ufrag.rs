//! The first look the server's media port takes at every datagram and ICE-TCP frame: the
//! username fragment of a STUN binding request, which picks the connection it is for
//! (`aula_server::udp_mux::stun_local_ufrag`). A fragment found must be a non-empty part of
//! the USERNAME before its colon.

use aula_server::udp_mux::stun_local_ufrag;

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Some(ufrag) = stun_local_ufrag(data) {
        assert!(!ufrag.is_empty());
        assert!(!ufrag.contains(':'));
        let at = ufrag.as_ptr() as usize - data.as_ptr() as usize;
        assert!(
            at >= 24 && at + ufrag.len() <= data.len(),
            "inside the attribute"
        );
    }
}
