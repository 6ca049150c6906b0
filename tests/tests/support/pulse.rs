//! A private PulseAudio server for tests of real audio devices without a sound card: its
//! devices are PulseAudio's virtual ones (a sine-wave source, null sinks), which run in real
//! time like hardware. Each test gets its own server on a socket in a temporary directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PulseAudio server, stopped when dropped.
pub struct Pulse {
    child: Child,
    dir: PathBuf,
    server: String,
}

impl Pulse {
    /// Starts a server that loads `modules` (lines of a PulseAudio script, e.g.
    /// `load-module module-null-sink sink_name=speaker`) and waits until it accepts clients.
    pub fn start(name: &str, modules: &[&str]) -> Pulse {
        let dir = std::env::temp_dir().join(format!("aula-pulse-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let socket = dir.join("native");
        let mut script = format!(
            "load-module module-native-protocol-unix socket={} auth-anonymous=1\n",
            socket.display()
        );
        for line in modules {
            script.push_str(line);
            script.push('\n');
        }
        let script_path = dir.join("aula.pa");
        std::fs::write(&script_path, script).expect("the script is written");
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disable-shm=yes",
                "--log-target=stderr",
                "-F",
            ])
            .arg(&script_path)
            .env("HOME", &dir)
            .env("XDG_RUNTIME_DIR", &dir)
            .env("PULSE_RUNTIME_PATH", &dir)
            .env_remove("PULSE_SERVER")
            .env_remove("DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio runs (scripts/test.sh installs the pulseaudio package)");
        let server = format!("unix:{}", socket.display());
        let pulse = Pulse { child, dir, server };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !pulse.answers() {
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not come up on {}",
                pulse.server
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pulse
    }

    /// The server address, for `PULSE_SERVER`.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn answers(&self) -> bool {
        self.pactl(&["info"]).is_some()
    }

    /// Runs `pactl` against this server; its output when it succeeded.
    pub fn pactl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("pactl")
            .args(args)
            .env("PULSE_SERVER", &self.server)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Plays a continuous `hz` tone into `sink` with `pacat` (which paces it in real time)
    /// until the returned guard is dropped.
    pub fn play_tone(&self, sink: &str, hz: f64) -> Tone {
        use std::io::Write;
        let mut child = Command::new("pacat")
            .args([
                "--playback",
                "-d",
                sink,
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .env("PULSE_SERVER", &self.server)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pacat runs (pulseaudio-utils)");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || {
            let mut n: u64 = 0;
            loop {
                let block: Vec<u8> = (0..960)
                    .map(|_| {
                        let t = n as f64 / 48_000.0;
                        n += 1;
                        ((std::f64::consts::TAU * hz * t).sin() * 10_000.0) as i16
                    })
                    .flat_map(i16::to_le_bytes)
                    .collect();
                if stdin.write_all(&block).is_err() {
                    break;
                }
            }
        });
        Tone {
            child,
            writer: Some(writer),
        }
    }

    /// Records `seconds` of 48 kHz mono from `source` with `parec` (independent of Aula).
    pub fn record(&self, source: &str, seconds: f64) -> Vec<i16> {
        let mut child = Command::new("parec")
            .args([
                "-d",
                source,
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec runs (pulseaudio-utils)");
        let mut stdout = child.stdout.take().expect("piped stdout");
        // Read while it records: a full pipe would stall it.
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
            bytes
        });
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let _ = child.kill();
        let _ = child.wait();
        let bytes = reader.join().unwrap_or_default();
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

/// A tone playing into a sink; stops when dropped.
pub struct Tone {
    child: Child,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Tone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The strongest frequency between 50 Hz and 4 kHz, to 0.1 Hz (Goertzel filters: a coarse
/// scan, then a fine one around the peak). `None` for silence.
pub fn frequency(samples: &[i16], rate: u32) -> Option<f64> {
    if rms(samples) < 100.0 {
        return None;
    }
    let power = |hz: f64| {
        let coefficient = 2.0 * (std::f64::consts::TAU * hz / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s0 = f64::from(x) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coefficient * s1 * s2
    };
    let peak = |from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut hz = from;
        while hz <= to {
            let p = power(hz);
            if p > best.1 {
                best = (hz, p);
            }
            hz += step;
        }
        best.0
    };
    let coarse = peak(50.0, 4000.0, 5.0);
    Some(peak(coarse - 5.0, coarse + 5.0, 0.1))
}

/// The median of [`frequency`] over consecutive quarter-second pieces: one piece spoiled by a
/// glitch (a late packet on a loaded machine) does not move it.
pub fn steady_frequency(samples: &[i16], rate: u32) -> Option<f64> {
    let mut pieces: Vec<f64> = samples
        .chunks_exact(rate as usize / 4)
        .filter_map(|piece| frequency(piece, rate))
        .collect();
    if pieces.is_empty() {
        return None;
    }
    pieces.sort_by(f64::total_cmp);
    Some(pieces[pieces.len() / 2])
}

/// 20 ms blocks that are nearly silent: gaps in what should be a continuous tone.
pub fn gaps(samples: &[i16]) -> usize {
    samples
        .chunks(960)
        .filter(|block| rms(block) < 300.0)
        .count()
}

/// Root mean square level.
pub fn rms(samples: &[i16]) -> f64 {
    (samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len().max(1) as f64)
        .sqrt()
}
