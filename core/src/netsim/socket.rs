//! Applying a [`Link`] model to a peer connection's real UDP socket, per direction.
//!
//! `webrtc` asks its [`Runtime`] to wrap every socket it binds; [`ImpairedRuntime`] wraps it in
//! an [`ImpairedSocket`] whose sends pass through the uplink model and whose receives pass
//! through the downlink model before the connection sees them. Settings live in a
//! [`NetworkImpairment`] handle and may change while media flows (schedules, cuts).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

use super::model::{Fate, Link, LinkSettings};

/// Datagrams buffered in each direction before the impaired socket drops (as a full socket
/// buffer would).
const QUEUE_DEPTH: usize = 4096;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

#[derive(Debug, Default)]
struct Paths {
    up: LinkSettings,
    down: LinkSettings,
}

/// The impairments of a client's media path, shared by every socket it opens. Cloning gives
/// another handle to the same settings.
#[derive(Clone, Default)]
pub struct NetworkImpairment {
    paths: Arc<Mutex<Paths>>,
    seed: u64,
}

impl fmt::Debug for NetworkImpairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths = self.lock();
        f.debug_struct("NetworkImpairment")
            .field("up", &paths.up)
            .field("down", &paths.down)
            .finish()
    }
}

impl NetworkImpairment {
    /// A path with `up` applied to what this client sends and `down` to what it receives.
    pub fn new(up: LinkSettings, down: LinkSettings) -> Self {
        Self {
            paths: Arc::new(Mutex::new(Paths { up, down })),
            seed: 0x5eed,
        }
    }

    /// The same impairments both ways.
    pub fn symmetric(settings: LinkSettings) -> Self {
        Self::new(settings.clone(), settings)
    }

    /// Uses `seed` for the random loss and jitter, for reproducible runs.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Replaces the uplink settings.
    pub fn set_up(&self, settings: LinkSettings) {
        self.lock().up = settings;
    }

    /// Replaces the downlink settings.
    pub fn set_down(&self, settings: LinkSettings) {
        self.lock().down = settings;
    }

    /// Cuts the path both ways (every packet dropped) or restores it.
    pub fn set_cut(&self, cut: bool) {
        let mut paths = self.lock();
        paths.up.down = cut;
        paths.down.down = cut;
    }

    /// The current uplink and downlink settings.
    pub fn settings(&self) -> (LinkSettings, LinkSettings) {
        let paths = self.lock();
        (paths.up.clone(), paths.down.clone())
    }

    /// A runtime whose UDP sockets apply these impairments.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(ImpairedRuntime {
            impairment: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Paths> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tokio runtime for `webrtc` whose UDP sockets are impaired.
pub struct ImpairedRuntime {
    impairment: NetworkImpairment,
}

impl fmt::Debug for ImpairedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImpairedRuntime").finish()
    }
}

impl Runtime for ImpairedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let local_addr = socket.local_addr()?;
        let seed = self.impairment.seed ^ u64::from(local_addr.port());
        let (up_tx, up_rx) = mpsc::channel(QUEUE_DEPTH);
        let (down_tx, down_rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_uplink(
            Arc::clone(&socket),
            self.impairment.clone(),
            Link::new(seed),
            up_rx,
        ));
        tokio::spawn(run_downlink(
            socket,
            self.impairment.clone(),
            Link::new(seed.rotate_left(17)),
            down_tx,
        ));
        Ok(Arc::new(ImpairedSocket {
            local_addr,
            up: up_tx,
            down: Mutex::new(down_rx),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
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
        "aula-impaired"
    }
}

/// Packets waiting for their delivery time, earliest first.
#[derive(Default)]
struct DelayLine {
    heap: BinaryHeap<Reverse<(Instant, u64, Datagram)>>,
    order: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Datagram {
    peer: SocketAddr,
    data: Bytes,
}

impl DelayLine {
    fn push(&mut self, at: Instant, datagram: Datagram) {
        self.order += 1;
        self.heap.push(Reverse((at, self.order, datagram)));
    }

    fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_due()? <= now {
            self.heap.pop().map(|Reverse((_, _, d))| d)
        } else {
            None
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn run_uplink(
    socket: Arc<UdpSocket>,
    impairment: NetworkImpairment,
    mut link: Link,
    mut outgoing: mpsc::Receiver<Datagram>,
) {
    let mut line = DelayLine::default();
    loop {
        tokio::select! {
            datagram = outgoing.recv() => {
                let Some(datagram) = datagram else { return };
                let settings = impairment.lock().up.clone();
                let now = Instant::now();
                if let Fate::Deliver(at) = link.on_packet(&settings, now, datagram.data.len()) {
                    line.push(at, datagram);
                }
            }
            _ = sleep_until(line.next_due()) => {}
        }
        while let Some(datagram) = line.pop_due(Instant::now()) {
            // Errors towards one peer (unreachable) must not stop the path.
            let _ = socket.send_to(&datagram.data, datagram.peer).await;
        }
    }
}

async fn run_downlink(
    socket: Arc<UdpSocket>,
    impairment: NetworkImpairment,
    mut link: Link,
    incoming: mpsc::Sender<Datagram>,
) {
    let mut line = DelayLine::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((len, peer)) = received {
                    let settings = impairment.lock().down.clone();
                    if let Fate::Deliver(at) = link.on_packet(&settings, Instant::now(), len) {
                        line.push(at, Datagram { peer, data: Bytes::copy_from_slice(&buf[..len]) });
                    }
                }
            }
            _ = sleep_until(line.next_due()) => {}
            _ = incoming.closed() => return,
        }
        while let Some(datagram) = line.pop_due(Instant::now()) {
            let _ = incoming.try_send(datagram);
        }
    }
}

/// A peer connection's socket seen through the impairments.
pub struct ImpairedSocket {
    local_addr: SocketAddr,
    up: mpsc::Sender<Datagram>,
    down: Mutex<mpsc::Receiver<Datagram>>,
}

impl fmt::Debug for ImpairedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImpairedSocket")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let datagram = Datagram {
            peer: transmit.destination,
            data: Bytes::copy_from_slice(transmit.contents),
        };
        // A full queue drops the datagram, as a full socket buffer would.
        let _ = self.up.try_send(datagram);
        Poll::Ready(Ok(transmit.contents.len()))
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
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match down.poll_recv(cx) {
            Poll::Ready(Some(datagram)) => {
                let len = datagram.data.len().min(buf.len());
                buf[..len].copy_from_slice(&datagram.data[..len]);
                let mut filled = RecvMeta::default();
                filled.addr = datagram.peer;
                filled.len = len;
                filled.stride = len.max(1);
                *slot = filled;
                Poll::Ready(Ok(1))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "impaired path closed",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}
