//! An independent WebRTC stack joins a room: aiortc (Python; FFmpeg's H.264 and libopus through
//! PyAV), driven by `tests/aiortc/client.py`, which follows docs/protocol.md.
//!
//! - In a room where an Aula participant already publishes, aiortc publishes H.264 and Opus
//!   from an offer that lists VP8 before H.264 and PCMU before Opus, and receives the Aula
//!   participant's stamped camera and tone. Both sides check what they decoded: the Aula
//!   participant reads the stamps aiortc sent back out of its decoded frames and hears audio;
//!   the frames and sound aiortc decoded are read here (stamps intact, the 440 Hz tone).
//! - aiortc joins an empty room (its first subscriber offer holds only a data channel) and
//!   receives, by renegotiation, each track that comes later: a publisher's camera and
//!   microphone, a second publisher's while the first one's media flows, a camera that takes
//!   over the section of one that ended, and a publisher's tracks after it left and came back.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use aula_core::media::{
    read_stamp, FrameStamp, SyntheticAudioSource, SyntheticVideoSource, VideoFrame,
};
use aula_core::{Room, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{MediaKind, Role, TrackInfo};
use aula_server::{Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support;

/// Longest wait for one step (a machine shared with builders can be slow; steps end as soon as
/// what they wait for was decoded).
const STEP_TIMEOUT: Duration = Duration::from_secs(40);

/// Held by a test while its aiortc client runs: one client at a time. Two Python clients
/// decoding (and one encoding) H.264 beside the rest of the suite starved each other on a
/// loaded 2-core machine until video stalled for a whole step.
static ONE_CLIENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The frames aiortc sends, looped.
const SENT_SIZE: (u32, u32) = (320, 240);
const SENT_FRAMES: u32 = 30;
/// The tone the Aula participant sends, Hz.
const TONE_HZ: f64 = 440.0;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("aiortc")
}

/// Stamped I420 frames in the layout `client.py` reads: width, height, count (u32 LE), frames.
fn write_sent_frames(path: &std::path::Path) {
    let (width, height) = SENT_SIZE;
    let mut source = SyntheticVideoSource::new(width, height, 15).expect("valid size");
    let mut file = std::fs::File::create(path).expect("frames file");
    for value in [width, height, SENT_FRAMES] {
        file.write_all(&value.to_le_bytes()).expect("header");
    }
    let start_us = unix_now() * 1_000_000;
    for sequence in 0..SENT_FRAMES {
        let frame = source.frame(FrameStamp {
            sequence,
            capture_time_us: start_us + u64::from(sequence) * 66_667,
        });
        for plane in [&frame.y, &frame.u, &frame.v] {
            file.write_all(plane).expect("frame");
        }
    }
}

/// The frames `client.py` wrote for a track: the last ones it decoded.
fn read_received_frames(path: &Path) -> Vec<VideoFrame> {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("client.py wrote its decoded frames to {path:?}: {e}"));
    let word = |i: usize| u32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
    let (width, height, count) = (word(0), word(1), word(2) as usize);
    let (luma, chroma) = ((width * height) as usize, (width * height / 4) as usize);
    let size = luma + 2 * chroma;
    (0..count)
        .map(|i| {
            let frame = &data[12 + i * size..12 + (i + 1) * size];
            VideoFrame {
                width,
                height,
                y: frame[..luma].to_vec(),
                u: frame[luma..luma + chroma].to_vec(),
                v: frame[luma + chroma..].to_vec(),
                timestamp_us: 0,
            }
        })
        .collect()
}

/// Power of `samples` (48 kHz) at `hz`, by Goertzel's algorithm, per sample.
fn tone_power(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let coefficient = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &sample in samples {
        let s0 = f64::from(sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / samples.len().max(1) as f64
}

/// What `client.py` has reported so far (its stdout events).
#[derive(Default)]
struct Seen {
    /// Whether its subscriber connection is up.
    connected: bool,
    /// The sections of each subscriber offer it answered, in order: `[mid, kind, direction,
    /// participant id, track sid]`.
    offers: Vec<Vec<Value>>,
    /// The latest progress per track sid: frames and samples decoded, the picture size.
    decoded: HashMap<String, Value>,
    summary: Option<Value>,
}

impl Seen {
    /// Frames (video) or samples (audio) decoded from track `sid`.
    fn count(&self, sid: &str, what: &str) -> u64 {
        self.decoded
            .get(sid)
            .and_then(|d| d[what].as_u64())
            .unwrap_or(0)
    }

    /// The section of the latest answered offer that has `mid`.
    fn section(&self, mid: &str) -> Option<&Value> {
        self.offers.last()?.iter().find(|s| s[0] == mid)
    }

    /// The section that carries track `sid` in the latest answered offer.
    fn section_of(&self, sid: &str) -> Option<&Value> {
        self.offers.last()?.iter().find(|s| s[4] == sid)
    }

    /// Whether the section that carried track `sid` is inactive in the latest answered offer.
    fn ended(&self, sid: &str) -> bool {
        let mid = self
            .offers
            .iter()
            .flatten()
            .find(|s| s[4] == sid)
            .map(|s| s[0].clone());
        mid.and_then(|mid| self.section(mid.as_str()?))
            .is_some_and(|s| s[2] == "inactive")
    }
}

/// `tests/aiortc/client.py` in the room: its events, its input, its log.
struct AiortcClient {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Seen,
    work: PathBuf,
}

impl AiortcClient {
    /// Starts `client.py` in `room` as `identity`; it publishes the frames in `publish` if given.
    fn spawn(
        server: &ServerHandle,
        room: &str,
        identity: &str,
        work: &Path,
        publish: Option<&Path>,
    ) -> Self {
        let dir = interop_dir();
        let python = dir.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: create it with `python3 -m venv tests/aiortc/.venv && \
             tests/aiortc/.venv/bin/pip install -r tests/aiortc/requirements.txt` \
             (scripts/test.sh does)",
            python.display()
        );
        let mut command = Command::new(&python);
        command
            .arg(dir.join("client.py"))
            // The signaling endpoint, as docs/protocol.md names it.
            .arg(format!("{}/rtc", server.ws_url()))
            .arg(room)
            .arg(support::token(room, identity, Role::Student))
            .arg(work);
        if let Some(frames) = publish {
            command.arg("--publish").arg(frames);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(work.join("client.log")).expect("log file"))
            .spawn()
            .expect("the venv's python runs");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "unparsed", "line": line}));
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            events,
            seen: Seen::default(),
            work: work.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.work.join("client.log")).unwrap_or_default()
    }

    fn take(&mut self, event: Value) {
        let seen = &mut self.seen;
        match event["event"].as_str() {
            Some("connected") => seen.connected = true,
            Some("answered") => seen
                .offers
                .push(event["sections"].as_array().cloned().unwrap_or_default()),
            Some("decoded") => {
                let sid = event["sid"].as_str().unwrap_or_default().to_owned();
                seen.decoded.insert(sid, event);
            }
            Some("summary") => seen.summary = Some(event),
            _ => {}
        }
    }

    /// Waits until `ready` holds for what the client reported (and whatever else `ready`
    /// looks at; it is asked again at least every 100 ms), and returns what it returned.
    async fn wait_until<T>(&mut self, what: &str, mut ready: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(value) = ready(&self.seen) {
                return value;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "aiortc: no {what} within {STEP_TIMEOUT:?}; decoded: {:?}\noffers: {:?}\nlog: {}",
                    self.seen.decoded,
                    self.seen.offers,
                    self.log()
                );
            }
            match tokio::time::timeout(Duration::from_millis(100), self.events.recv()).await {
                Ok(Some(event)) => self.take(event),
                Ok(None) => {
                    let status = self.child.wait();
                    panic!(
                        "client.py ended ({status:?}) while waiting for {what}; log: {}",
                        self.log()
                    );
                }
                Err(_) => {}
            }
        }
    }

    /// Tells the client to leave; returns its summary once it has ended.
    async fn leave(mut self) -> Value {
        writeln!(self.stdin, "leave").expect("client.py reads its input");
        let summary = self
            .wait_until("summary after leaving", |seen| seen.summary.clone())
            .await;
        let status = self.child.wait().expect("wait for client.py");
        assert!(status.success(), "client.py failed: {}", self.log());
        assert_eq!(summary["errors"], serde_json::json!([]), "{}", self.log());
        summary
    }
}

/// Publishes a stamped synthetic camera as one stream (no simulcast) and returns its track.
async fn publish_camera(room: &Room, width: u32, height: u32) -> TrackInfo {
    room.publish_video(
        SyntheticVideoSource::new(width, height, 15).expect("valid size"),
        VideoPublishOptions {
            bitrate_bps: 300_000,
            simulcast: false,
            ..VideoPublishOptions::default()
        },
    )
    .await
    .expect("video publishes")
}

/// Checks the frames aiortc decoded last from track `sid`: `size`, and most carry an intact
/// stamp, in order.
fn check_frames(work: &Path, sid: &str, size: (u32, u32)) -> usize {
    let decoded = read_received_frames(&work.join(format!("video-{sid}.i420")));
    assert!(!decoded.is_empty(), "no frames kept for {sid}");
    assert_eq!(
        (decoded[0].width, decoded[0].height),
        size,
        "frames of {sid} have its size"
    );
    let stamps: Vec<u32> = decoded
        .iter()
        .filter_map(read_stamp)
        .map(|s| s.sequence)
        .collect();
    assert!(
        stamps.len() * 2 >= decoded.len() && stamps.len() >= 10,
        "{} of {} frames aiortc decoded from {sid} carry an intact stamp",
        stamps.len(),
        decoded.len()
    );
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "stamps of {sid} in order: {stamps:?}"
    );
    stamps.len()
}

/// Checks that the audio aiortc decoded last from track `sid` is a tone of `hz`.
fn check_tone(work: &Path, sid: &str, hz: f64) {
    let pcm: Vec<i16> = std::fs::read(work.join(format!("audio-{sid}.s16")))
        .unwrap_or_else(|e| panic!("client.py wrote the audio of {sid}: {e}"))
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(pcm.len() >= 24_000, "aiortc decoded {} samples", pcm.len());
    let tone = tone_power(&pcm, hz);
    for other in [330.0, 440.0, 660.0, 1000.0]
        .into_iter()
        .filter(|f| *f != hz)
    {
        assert!(
            tone > 20.0 * tone_power(&pcm, other),
            "aiortc hears {hz} Hz ({tone:.0}) above {other} Hz ({:.0}) from {sid}",
            tone_power(&pcm, other)
        );
    }
}

fn work_dir(name: &str) -> PathBuf {
    let work = std::env::temp_dir().join(format!("aula-aiortc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_and_receives_h264_and_opus() {
    let _suite = support::shared().await;
    let _one_client = ONE_CLIENT.lock().await;
    support::init_test_log();
    let work = work_dir("both-ways");
    write_sent_frames(&work.join("sent.i420"));

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (aula, _events) = support::join(&server, "interop", "aula", Role::Teacher).await;
    let camera = publish_camera(&aula, 320, 180).await;
    let mic = aula
        .publish_audio(SyntheticAudioSource::new(TONE_HZ as f32), "mic")
        .await
        .expect("audio publishes");

    let mut client = AiortcClient::spawn(
        &server,
        "interop",
        "aiortc",
        &work,
        Some(&work.join("sent.i420")),
    );
    // Until each side has decoded enough of the other, watching what the Aula participant
    // decodes from aiortc (its subscription ends when aiortc leaves).
    let (mut frames, mut stamped, mut samples, mut level) = (0u64, 0u64, 0u64, 0f64);
    client
        .wait_until("media both ways", |seen| {
            for r in aula.stats().received.iter().filter(|r| r.from == "aiortc") {
                match r.kind {
                    MediaKind::Video => {
                        frames = frames.max(r.frames_decoded);
                        stamped = stamped.max(r.frames_stamped_ok);
                    }
                    _ => {
                        samples = samples.max(r.samples_decoded);
                        level = level.max(r.audio_level);
                    }
                }
            }
            (seen.count(camera.sid.as_str(), "frames") >= 40
                && seen.count(mic.sid.as_str(), "samples") >= 96_000
                && frames >= 30
                && stamped >= 20
                && samples >= 48_000
                && level > 500.0)
                .then_some(())
        })
        .await;
    let summary = client.leave().await;

    // The protocol as aiortc saw it.
    assert_eq!(summary["first_message"], "joined", "{summary}");
    let aula_id = aula.local_participant().id.to_string();
    assert_eq!(summary["others"], serde_json::json!([aula_id]), "{summary}");
    // Its offer preferred VP8 and PCMU; the answer took H.264 and Opus and nothing else.
    let codecs = |side: &str, kind: &str| -> Vec<String> {
        summary[side][kind]
            .as_array()
            .unwrap_or_else(|| panic!("{side} {kind}: {summary}"))
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_ascii_lowercase())
            .collect()
    };
    let offered_video = codecs("offered", "video");
    assert_eq!(
        offered_video.first().map(String::as_str),
        Some("vp8"),
        "{summary}"
    );
    assert!(offered_video.iter().any(|c| c == "h264"), "{summary}");
    assert_eq!(
        codecs("offered", "audio").first().map(String::as_str),
        Some("pcmu"),
        "{summary}"
    );
    let answered_video = codecs("answered", "video");
    assert_eq!(
        answered_video.first().map(String::as_str),
        Some("h264"),
        "{summary}"
    );
    assert!(
        answered_video.iter().all(|c| c == "h264" || c == "rtx"),
        "only H.264 and its retransmissions: {summary}"
    );
    assert_eq!(codecs("answered", "audio"), ["opus"], "{summary}");

    // aiortc received both of the Aula participant's tracks, mapped by their m-section's msid.
    for (kind, sid) in [("video", &camera.sid), ("audio", &mic.sid)] {
        let track = &summary["tracks"][sid.as_str()];
        assert_eq!(track["kind"], kind, "{summary}");
        assert_eq!(track["from"], aula_id.as_str(), "{summary}");
    }

    // What aiortc decoded: H.264 frames whose stamps survived, and the tone.
    let stamps = check_frames(&work, camera.sid.as_str(), (320, 180));
    check_tone(&work, mic.sid.as_str(), TONE_HZ);
    eprintln!(
        "aiortc decoded {} frames ({stamps} of the last kept stamped) and {} samples; \
         the Aula participant decoded {frames} frames ({stamped} stamped) and {samples} samples",
        summary["tracks"][camera.sid.as_str()]["frames"],
        summary["tracks"][mic.sid.as_str()]["samples"],
    );
    aula.disconnect().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Frames aiortc must decode from each track before the next step.
const FRAMES_PER_STEP: u64 = 20;
/// Samples of audio aiortc must decode from each microphone before the next step (0.5 s).
const SAMPLES_PER_STEP: u64 = 24_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_receives_tracks_that_come_after_it() {
    let _suite = support::shared().await;
    let _one_client = ONE_CLIENT.lock().await;
    support::init_test_log();
    let work = work_dir("late");
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let room = "late";
    let mut client = AiortcClient::spawn(&server, room, "aiortc", &work, None);

    // An empty room: the first offer holds a data channel only, and the connection comes up.
    let first = client
        .wait_until("first offer", |seen| seen.offers.first().cloned())
        .await;
    assert!(
        first.iter().all(|s| s[1] == "application"),
        "the first offer in an empty room holds only a data channel: {first:?}"
    );
    client
        .wait_until("subscriber connection", |seen| seen.connected.then_some(()))
        .await;

    // A publisher arrives: its camera and microphone come by renegotiation.
    let (alice, _alice_events) = support::join(&server, room, "alice", Role::Teacher).await;
    let alice_camera = publish_camera(&alice, 320, 180).await;
    let alice_mic = alice
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .expect("audio publishes");
    let (camera, mic) = (alice_camera.sid.to_string(), alice_mic.sid.to_string());
    client
        .wait_until("alice's camera and microphone", |seen| {
            (seen.count(&camera, "frames") >= FRAMES_PER_STEP
                && seen.count(&mic, "samples") >= SAMPLES_PER_STEP)
                .then_some(())
        })
        .await;

    // A second publisher while alice's media flows: both keep coming.
    let (bob, _bob_events) = support::join(&server, room, "bob", Role::Student).await;
    let bob_camera = publish_camera(&bob, 256, 144).await;
    let bob_mic = bob
        .publish_audio(SyntheticAudioSource::new(660.0), "mic")
        .await
        .expect("audio publishes");
    let alice_before = client.seen.count(&camera, "frames");
    let (b_camera, b_mic) = (bob_camera.sid.to_string(), bob_mic.sid.to_string());
    client
        .wait_until("bob's tracks beside alice's", |seen| {
            (seen.count(&b_camera, "frames") >= FRAMES_PER_STEP
                && seen.count(&b_mic, "samples") >= SAMPLES_PER_STEP
                && seen.count(&camera, "frames") >= alice_before + FRAMES_PER_STEP)
                .then_some(())
        })
        .await;

    // A track ends and the next one of its kind takes over its section.
    let camera_mid = client.seen.section_of(&camera).expect("alice's camera")[0].clone();
    alice.unpublish(&alice_camera.sid).await.expect("unpublish");
    client
        .wait_until("alice's camera section inactive", |seen| {
            seen.ended(&camera).then_some(())
        })
        .await;
    let alice_camera2 = publish_camera(&alice, 288, 160).await;
    let camera2 = alice_camera2.sid.to_string();
    client
        .wait_until("alice's second camera", |seen| {
            (seen.count(&camera2, "frames") >= FRAMES_PER_STEP).then_some(())
        })
        .await;
    assert_eq!(
        client.seen.section_of(&camera2).map(|s| s[0].clone()),
        Some(camera_mid.clone()),
        "the second camera took over the first one's section"
    );

    // A publisher leaves and comes back.
    bob.disconnect().await;
    client
        .wait_until("bob's sections inactive", |seen| {
            (seen.ended(&b_camera) && seen.ended(&b_mic)).then_some(())
        })
        .await;
    let (bob, _bob_events) = support::join(&server, room, "bob", Role::Student).await;
    let bob_camera2 = publish_camera(&bob, 272, 152).await;
    let bob_mic2 = bob
        .publish_audio(SyntheticAudioSource::new(660.0), "mic")
        .await
        .expect("audio publishes");
    let (b_camera2, b_mic2) = (bob_camera2.sid.to_string(), bob_mic2.sid.to_string());
    client
        .wait_until("bob's tracks after he came back", |seen| {
            (seen.count(&b_camera2, "frames") >= FRAMES_PER_STEP
                && seen.count(&b_mic2, "samples") >= SAMPLES_PER_STEP)
                .then_some(())
        })
        .await;

    let summary = client.leave().await;
    let offers = summary["offers_answered"].as_u64().unwrap_or(0);
    // What aiortc decoded from each track: its pictures, stamped, and its tone.
    for (sid, size) in [
        (&camera, (320, 180)),
        (&b_camera, (256, 144)),
        (&camera2, (288, 160)),
        (&b_camera2, (272, 152)),
    ] {
        check_frames(&work, sid, size);
    }
    for (sid, hz) in [(&mic, 440.0), (&b_mic, 660.0), (&b_mic2, 660.0)] {
        check_tone(&work, sid, hz);
    }
    eprintln!(
        "aiortc answered {offers} offers and decoded: {}",
        summary["tracks"]
    );
    alice.disconnect().await;
    bob.disconnect().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
}
