//! One UDP port for every peer connection (ICE mux).
//!
//! `webrtc` binds a socket per peer connection. The server instead owns one socket and gives
//! each peer connection a [`MuxRuntime`] whose `wrap_udp_socket` returns a view of the shared
//! socket ([`MuxedSocket`]) instead of the ephemeral socket the connection bound. Incoming
//! datagrams are routed to a view first by the remote address, and for an address not yet seen
//! by the USERNAME of a STUN binding request, whose first half is the server-side ICE username
//! fragment each connection is given up front ([`UdpMux::register`]). The server runs ICE-lite,
//! so every flow starts with such a request from the client.
//!
//! The connection still believes it owns the ephemeral port; the candidates it gathers are
//! rewritten to the shared address before they leave the server ([`rewrite_candidates`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::tcp_mux::TcpMux;
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagrams queued per connection before the mux starts dropping (as a full socket would).
const QUEUE_DEPTH: usize = 1024;
/// Largest datagram read from the shared socket.
const MAX_DATAGRAM: usize = 2048;

type Route = mpsc::Sender<(Bytes, SocketAddr)>;

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, (String, Route)>,
}

/// The shared media socket and its routing table, plus the ICE-TCP listener on the same port
/// number when enabled.
pub struct UdpMux {
    socket: Arc<UdpSocket>,
    announced: SocketAddr,
    routes: Mutex<Routes>,
    tcp: Option<Arc<TcpMux>>,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpMux")
            .field("announced", &self.announced)
            .finish()
    }
}

impl UdpMux {
    /// Binds the shared socket on `bind` and starts routing. `announced` is the address put in
    /// candidates (the public address when behind NAT or in a container). With `ice_tcp`, a
    /// TCP listener on the same port number serves ICE over TCP (with port 0, on the UDP
    /// socket's port if free, else on any).
    pub async fn bind(
        bind: SocketAddr,
        announced_ip: Option<std::net::IpAddr>,
        ice_tcp: bool,
    ) -> io::Result<Arc<Self>> {
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let local = socket.local_addr()?;
        let announced_ip = announced_ip.unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                local.ip()
            }
        });
        let tcp = if ice_tcp {
            let same_port = SocketAddr::new(bind.ip(), local.port());
            let listener = match tokio::net::TcpListener::bind(same_port).await {
                Ok(listener) => listener,
                Err(_) if bind.port() == 0 => tokio::net::TcpListener::bind(bind).await?,
                Err(err) => return Err(err),
            };
            Some(TcpMux::start(listener, announced_ip)?)
        } else {
            None
        };
        let mux = Arc::new(Self {
            socket,
            announced: SocketAddr::new(announced_ip, local.port()),
            routes: Mutex::new(Routes::default()),
            tcp,
        });
        tokio::spawn(Arc::clone(&mux).receive_loop());
        Ok(mux)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The address clients are told to send media to.
    pub fn announced_addr(&self) -> SocketAddr {
        self.announced
    }

    /// The address announced in passive ICE-TCP candidates, when ICE over TCP is on.
    pub fn announced_tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|tcp| tcp.announced_addr())
    }

    /// Where the ICE-TCP listener is bound, when ICE over TCP is on.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|tcp| tcp.local_addr())
    }

    /// A runtime for one peer connection whose server-side ICE username fragment is `ufrag`.
    /// Datagrams for that fragment reach the connection once it wraps its socket.
    pub fn runtime_for(self: &Arc<Self>, ufrag: &str) -> Arc<MuxRuntime> {
        Arc::new(MuxRuntime {
            mux: Arc::clone(self),
            ufrag: ufrag.to_owned(),
        })
    }

    /// Forgets a connection's routes; called when it closes.
    pub fn unregister(&self, ufrag: &str) {
        let mut routes = self.lock_routes();
        routes.by_ufrag.remove(ufrag);
        routes.by_addr.retain(|_, (owner, _)| owner != ufrag);
        drop(routes);
        if let Some(tcp) = &self.tcp {
            tcp.unregister(ufrag);
        }
    }

    /// Number of connections currently routed.
    pub fn connection_count(&self) -> usize {
        self.lock_routes().by_ufrag.len()
    }

    fn register(&self, ufrag: &str, route: Route) {
        self.lock_routes().by_ufrag.insert(ufrag.to_owned(), route);
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // A panic while holding this lock would be a bug in the few lines below; keep serving.
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(err) if is_transient(&err) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "media socket failed");
                    return;
                }
            };
            let datagram = &buf[..len];
            let Some(route) = self.route(datagram, from) else {
                continue;
            };
            // A full queue means the connection is not keeping up: drop, as a kernel would.
            let _ = route.try_send((Bytes::copy_from_slice(datagram), from));
        }
    }

    fn route(&self, datagram: &[u8], from: SocketAddr) -> Option<Route> {
        let mut routes = self.lock_routes();
        if let Some((_, route)) = routes.by_addr.get(&from) {
            if !route.is_closed() {
                return Some(route.clone());
            }
        }
        let local_ufrag = stun_local_ufrag(datagram)?;
        let route = routes.by_ufrag.get(local_ufrag)?.clone();
        let owner = local_ufrag.to_owned();
        routes.by_addr.insert(from, (owner, route.clone()));
        Some(route)
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// The server-side username fragment of a STUN binding request (`USERNAME` is
/// `server_ufrag:client_ufrag` for requests the client sends us), or `None` for anything else.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    const USERNAME: u16 = 0x0006;
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(20..20 + body_len)?;
    let mut offset = 0;
    while offset + 4 <= body.len() {
        let attr_type = u16::from_be_bytes([body[offset], body[offset + 1]]);
        let attr_len = u16::from_be_bytes([body[offset + 2], body[offset + 3]]) as usize;
        let value = body.get(offset + 4..offset + 4 + attr_len)?;
        if attr_type == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        offset += 4 + attr_len.div_ceil(4) * 4;
    }
    None
}

/// Rewrites every host candidate in `sdp` to the mux's announced addresses (UDP, and passive
/// TCP when `announced_tcp` is set), dropping duplicates (a connection may have gathered its
/// ephemeral port on several interfaces), active TCP candidates (the server never dials out)
/// and candidates for RTCP's own component (2): the server multiplexes RTCP with RTP
/// (`a=rtcp-mux`, which WebRTC requires), so only component 1 carries anything.
pub fn rewrite_candidates(
    sdp: &str,
    announced: SocketAddr,
    announced_tcp: Option<SocketAddr>,
) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut seen_components = std::collections::HashSet::new();
    for line in sdp.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if let Some(value) = trimmed.strip_prefix("a=candidate:") {
            let mut fields: Vec<&str> = value.split(' ').collect();
            // foundation component transport priority address port "typ" type ...
            if fields.len() < 8 || fields[1] != "1" {
                continue;
            }
            let passive_tcp = fields[2].eq_ignore_ascii_case("tcp")
                && fields
                    .windows(2)
                    .any(|w| w[0] == "tcptype" && w[1] == "passive");
            let target = if fields[2].eq_ignore_ascii_case("udp") {
                announced
            } else if let (true, Some(tcp)) = (passive_tcp, announced_tcp) {
                tcp
            } else {
                // Active TCP candidates, or TCP while ICE-TCP is off: nothing serves them.
                continue;
            };
            let key = (
                fields[1].to_owned(),
                fields[2].to_ascii_lowercase(),
                line_media_index(&out),
            );
            if !seen_components.insert(key) {
                continue;
            }
            let ip = target.ip().to_string();
            let port = target.port().to_string();
            fields[4] = &ip;
            fields[5] = &port;
            out.push_str("a=candidate:");
            out.push_str(&fields.join(" "));
            out.push_str(&line[trimmed.len()..]);
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Counts the `m=` lines written so far, so duplicate candidates are found per media section.
fn line_media_index(written: &str) -> usize {
    written.matches("\nm=").count()
}

/// A [`Runtime`] that behaves like tokio's except that the UDP socket it wraps is a view of
/// the shared mux socket.
pub struct MuxRuntime {
    mux: Arc<UdpMux>,
    ufrag: String,
}

impl fmt::Debug for MuxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxRuntime")
            .field("ufrag", &self.ufrag)
            .finish()
    }
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        // The connection's own ephemeral socket is not used: its port only names the local
        // candidate inside the connection.
        drop(socket);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        self.mux.register(&self.ufrag, tx);
        Ok(Arc::new(MuxedSocket {
            mux: Arc::clone(&self.mux),
            incoming: Mutex::new(rx),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        match &self.mux.tcp {
            Some(tcp) => {
                // As with UDP, the connection's own listener only names its candidate.
                let candidate_addr = listener.local_addr()?;
                drop(listener);
                Ok(tcp.listener_for(&self.ufrag, candidate_addr))
            }
            None => TokioRuntime.wrap_tcp_listener(listener),
        }
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn name(&self) -> &'static str {
        "aula-udp-mux"
    }
}

/// One peer connection's view of the shared socket.
pub struct MuxedSocket {
    mux: Arc<UdpMux>,
    incoming: Mutex<mpsc::Receiver<(Bytes, SocketAddr)>>,
}

impl fmt::Debug for MuxedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxedSocket").finish()
    }
}

impl AsyncUdpSocket for MuxedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.mux.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        match self
            .mux
            .socket
            .poll_send_to(cx, transmit.contents, transmit.destination)
        {
            // An unreachable peer must not look like a dead socket to the driver.
            Poll::Ready(Err(err)) if is_transient(&err) => Poll::Ready(Ok(transmit.contents.len())),
            other => other,
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut incoming = self
            .incoming
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match incoming.poll_recv(cx) {
            Poll::Ready(Some((datagram, from))) => {
                let len = datagram.len().min(buf.len());
                buf[..len].copy_from_slice(&datagram[..len]);
                let mut filled = RecvMeta::default();
                filled.addr = from;
                filled.len = len;
                filled.stride = len.max(1);
                *slot = filled;
                Poll::Ready(Ok(1))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection unregistered from the media socket",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&0x0006u16.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        msg.extend_from_slice(&[7u8; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn finds_the_server_ufrag_in_a_binding_request() {
        assert_eq!(
            stun_local_ufrag(&binding_request("srv1:cli9")),
            Some("srv1")
        );
    }

    #[test]
    fn ignores_non_stun_and_truncated_datagrams() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let mut truncated = binding_request("srv1:cli9");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
        assert_eq!(stun_local_ufrag(&[]), None);
    }

    #[test]
    fn rewrites_host_candidates_to_the_announced_address() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=candidate:1 1 udp 2130706431 127.0.0.1 53211 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 10.0.0.2 53211 typ host\r\n\
                   a=candidate:3 1 tcp 1671430143 127.0.0.1 9 typ host tcptype passive\r\n";
        let announced = "203.0.113.7:7881".parse().unwrap();
        let out = rewrite_candidates(sdp, announced, None);
        assert!(out.contains("a=candidate:1 1 udp 2130706431 203.0.113.7 7881 typ host\r\n"));
        assert_eq!(out.matches("a=candidate:").count(), 1);
        assert!(out.starts_with("v=0\r\nm=video"));

        let with_tcp =
            format!("{sdp}a=candidate:4 1 tcp 1671430143 127.0.0.1 9 typ host tcptype active\r\n");
        let out = rewrite_candidates(&with_tcp, announced, Some(announced));
        assert!(out.contains(
            "a=candidate:3 1 tcp 1671430143 203.0.113.7 7881 typ host tcptype passive\r\n"
        ));
        assert!(
            !out.contains("tcptype active"),
            "the server never dials out"
        );
        assert_eq!(out.matches("a=candidate:").count(), 2);
    }

    #[test]
    fn drops_candidates_of_the_rtcp_component() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtcp-mux\r\n\
                   a=candidate:1 1 udp 2130706431 127.0.0.1 53211 typ host\r\n\
                   a=candidate:1 2 udp 2130706430 127.0.0.1 53212 typ host\r\n\
                   a=candidate:3 1 tcp 1671430143 127.0.0.1 9 typ host tcptype passive\r\n\
                   a=candidate:3 2 tcp 1671430142 127.0.0.1 9 typ host tcptype passive\r\n";
        let announced = "203.0.113.7:7881".parse().unwrap();
        let out = rewrite_candidates(sdp, announced, Some(announced));
        let components: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .map(|c| c.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(components, ["1", "1"], "{out}");
    }
}
