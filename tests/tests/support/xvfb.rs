//! A private virtual X display (Xvfb) for tests that share a screen, and a client that draws
//! known pictures on it. Each test starts its own display on a number Xvfb picks itself
//! (`-displayfd`), so tests run side by side and never touch a display that was already there.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, PropMode, Rectangle,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// A running Xvfb, killed when dropped.
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts a `width` x `height` 24-bit display and waits until it accepts clients.
    pub fn start(width: u32, height: u32) -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
                "-nolisten",
                "tcp",
                "-noreset",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (scripts/test.sh installs the xvfb package)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("Xvfb reports its display number");
        let number: u32 = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("Xvfb printed {line:?} instead of a display number")
        });
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }

    /// The display name, e.g. `:3`.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A window covering the screen, filled with solid rectangles.
pub struct Painter {
    conn: RustConnection,
    pub window: u32,
    gc: u32,
}

impl Painter {
    /// Opens a titled `width` x `height` window at the top-left of `display` and shows it.
    pub fn open(display: &str, title: &str, width: u16, height: u16) -> Painter {
        let (conn, screen) = x11rb::connect(Some(display)).expect("the test display accepts");
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().expect("an id");
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new()
                .background_pixel(0)
                .override_redirect(1),
        )
        .expect("create window");
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )
        .expect("title");
        let gc = conn.generate_id().expect("an id");
        conn.create_gc(gc, window, &CreateGCAux::new().foreground(0))
            .expect("gc");
        conn.map_window(window).expect("map");
        conn.sync().expect("the window is up");
        Painter { conn, window, gc }
    }

    /// Fills a rectangle with `rgb` (0xRRGGBB).
    pub fn fill(&self, x: i16, y: i16, width: u16, height: u16, rgb: u32) {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .expect("colour");
        self.conn
            .poly_fill_rectangle(
                self.window,
                self.gc,
                &[Rectangle {
                    x,
                    y,
                    width,
                    height,
                }],
            )
            .expect("fill");
    }

    /// Waits until everything drawn so far is on the screen.
    pub fn sync(&self) {
        self.conn.sync().expect("the display is up");
    }

    /// Moves the mouse pointer to (`x`, `y`) of the window.
    pub fn point_at(&self, x: i16, y: i16) {
        self.conn
            .warp_pointer(x11rb::NONE, self.window, 0, 0, 0, 0, x, y)
            .expect("warp");
        self.sync();
    }

    /// Closes the window.
    pub fn close(self) {
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.sync();
    }
}
