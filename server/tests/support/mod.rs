//! What the durability tests share: the real `aula-server` binary on a loopback port and a data
//! directory, killed when dropped (also when an assertion fails), and the WebSocket they talk
//! to it through.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A WebSocket to the server.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A loopback TCP port nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `aula-server` (dev keys, HTTP on `port`, any media port, its data in `data_dir`),
/// killed with SIGKILL when dropped.
pub struct Server(Child);

impl Server {
    /// Starts the server with `extra_args` after the common ones.
    pub fn start(data_dir: &Path, port: u16, extra_args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_aula-server"))
            .args(["--dev", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--rtc-port", "0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aula-server starts");
        Self(child)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
