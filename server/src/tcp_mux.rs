//! ICE over TCP on one port (RFC 6544 passive candidates, RFC 4571 framing): the fallback for
//! clients whose network blocks UDP.
//!
//! Like [`UdpMux`](crate::udp_mux::UdpMux), the server owns one listener and each peer
//! connection gets a view of it. An accepted stream is routed by the USERNAME of the first
//! framed STUN binding request, whose first half is the server-side ICE username fragment the
//! connection was given up front; the bytes read to route it are replayed to the connection.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use webrtc::runtime::{AsyncTcpListener, AsyncTcpStream};

use crate::udp_mux::stun_local_ufrag;

/// How long a new stream may take to send its first binding request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest first frame accepted (a binding request is about 100 bytes).
const MAX_FIRST_FRAME: usize = 1500;
/// Streams waiting per connection before further ones are refused.
const ACCEPT_QUEUE: usize = 16;

type Accepted = (Arc<dyn AsyncTcpStream>, SocketAddr);

/// Where a connection's streams go, and the address the connection believes it listens on:
/// routed streams report it as their local address, so the connection matches them to its
/// candidate.
struct Route {
    streams: mpsc::Sender<Accepted>,
    candidate_addr: SocketAddr,
}

/// The shared ICE-TCP listener and its routing table.
pub struct TcpMux {
    local: SocketAddr,
    announced: SocketAddr,
    routes: Mutex<HashMap<String, Route>>,
}

impl fmt::Debug for TcpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpMux")
            .field("announced", &self.announced)
            .finish()
    }
}

impl TcpMux {
    /// Starts routing streams accepted on `listener`; candidates announce `announced_ip` with
    /// the listener's port.
    pub fn start(listener: TcpListener, announced_ip: std::net::IpAddr) -> io::Result<Arc<Self>> {
        let local = listener.local_addr()?;
        let mux = Arc::new(Self {
            local,
            announced: SocketAddr::new(announced_ip, local.port()),
            routes: Mutex::new(HashMap::new()),
        });
        tokio::spawn(Arc::clone(&mux).accept_loop(listener));
        Ok(mux)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address put in passive TCP candidates.
    pub fn announced_addr(&self) -> SocketAddr {
        self.announced
    }

    /// A listener view for the connection whose server-side ICE username fragment is `ufrag`
    /// and which believes it listens on `candidate_addr`.
    pub fn listener_for(&self, ufrag: &str, candidate_addr: SocketAddr) -> Arc<MuxedTcpListener> {
        let (streams, rx) = mpsc::channel(ACCEPT_QUEUE);
        self.lock_routes().insert(
            ufrag.to_owned(),
            Route {
                streams,
                candidate_addr,
            },
        );
        Arc::new(MuxedTcpListener {
            candidate_addr,
            incoming: tokio::sync::Mutex::new(rx),
        })
    }

    /// Forgets a connection; called when it closes.
    pub fn unregister(&self, ufrag: &str) {
        self.lock_routes().remove(ufrag);
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let mux = Arc::clone(&self);
                    tokio::spawn(async move {
                        if let Err(reason) = mux.route(stream, peer).await {
                            tracing::debug!(%peer, reason, "ICE-TCP stream refused");
                        }
                    });
                }
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "ICE-TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Reads the first framed STUN request and hands the stream to its connection.
    async fn route(&self, mut stream: TcpStream, peer: SocketAddr) -> Result<(), &'static str> {
        let first = tokio::time::timeout(FIRST_REQUEST_TIMEOUT, read_frame(&mut stream))
            .await
            .map_err(|_| "no binding request in time")?
            .map_err(|_| "stream closed before a binding request")?;
        let ufrag = stun_local_ufrag(&first[2..]).ok_or("first frame is not a binding request")?;
        let (streams, candidate_addr) = self
            .lock_routes()
            .get(ufrag)
            .map(|route| (route.streams.clone(), route.candidate_addr))
            .ok_or("no connection with that username fragment")?;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let muxed = MuxedTcpStream {
            replay: Mutex::new(first),
            read_half,
            write_half,
            local: candidate_addr,
            peer,
        };
        streams
            .try_send((Arc::new(muxed), peer))
            .map_err(|_| "connection not accepting streams")
    }
}

/// Reads one RFC 4571 frame, returning it with its two-byte length prefix.
async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes(header));
    if len == 0 || len > MAX_FIRST_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad frame length",
        ));
    }
    let mut frame = vec![0u8; 2 + len];
    frame[..2].copy_from_slice(&header);
    stream.read_exact(&mut frame[2..]).await?;
    Ok(frame)
}

/// One connection's view of the shared listener.
pub struct MuxedTcpListener {
    candidate_addr: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Accepted>>,
}

impl fmt::Debug for MuxedTcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxedTcpListener")
            .field("candidate_addr", &self.candidate_addr)
            .finish()
    }
}

impl AsyncTcpListener for MuxedTcpListener {
    fn accept<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>> + Send + 'a>>
    {
        Box::pin(async move {
            let mut incoming = self.incoming.lock().await;
            match incoming.recv().await {
                Some(accepted) => Ok(accepted),
                None => Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "connection unregistered from the ICE-TCP listener",
                )),
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.candidate_addr)
    }
}

/// An accepted stream whose first frame, read for routing, is replayed before the rest.
struct MuxedTcpStream {
    replay: Mutex<Vec<u8>>,
    read_half: OwnedReadHalf,
    write_half: OwnedWriteHalf,
    local: SocketAddr,
    peer: SocketAddr,
}

impl fmt::Debug for MuxedTcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxedTcpStream")
            .field("peer", &self.peer)
            .finish()
    }
}

impl AsyncTcpStream for MuxedTcpStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            {
                let mut replay = self.replay.lock().unwrap_or_else(|p| p.into_inner());
                if !replay.is_empty() {
                    let n = replay.len().min(buf.len());
                    buf[..n].copy_from_slice(&replay[..n]);
                    replay.drain(..n);
                    return Ok(n);
                }
            }
            loop {
                self.read_half.readable().await?;
                match self.read_half.try_read(buf) {
                    Ok(n) => return Ok(n),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => return Err(err),
                }
            }
        })
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut remaining = buf;
            while !remaining.is_empty() {
                self.write_half.writable().await?;
                match self.write_half.try_write(remaining) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => remaining = &remaining[n..],
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
