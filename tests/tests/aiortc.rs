//! An independent WebRTC stack joins a room: aiortc (Python; FFmpeg's H.264 and libopus through
//! PyAV), driven by `tests/aiortc/client.py`, which follows docs/protocol.md. It publishes H.264
//! and Opus from an offer that lists VP8 before H.264 and PCMU before Opus, and receives an Aula
//! participant's stamped camera and tone. Both sides check what they decoded: the Aula
//! participant reads the stamps aiortc sent back out of its decoded frames and hears audio; the
//! frames and sound aiortc decoded are read here (stamps intact, the 440 Hz tone).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aula_core::media::{
    read_stamp, FrameStamp, SyntheticAudioSource, SyntheticVideoSource, VideoFrame,
};
use aula_protocol::token::unix_now;
use aula_protocol::{MediaKind, Role};
use aula_server::{Server, ServerConfig};

use crate::support;

/// How long the aiortc client stays in the room after publishing.
const SECONDS_IN_ROOM: u32 = 6;
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

/// The frames `client.py` wrote: the last ones it decoded.
fn read_received_frames(path: &std::path::Path) -> Vec<VideoFrame> {
    let data = std::fs::read(path).expect("client.py wrote its decoded frames");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_and_receives_h264_and_opus() {
    let _suite = support::shared().await;
    let dir = interop_dir();
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: create it with `python3 -m venv tests/aiortc/.venv && \
         tests/aiortc/.venv/bin/pip install -r tests/aiortc/requirements.txt` \
         (scripts/test.sh does)",
        python.display()
    );
    support::init_test_log();
    let work = std::env::temp_dir().join(format!("aula-aiortc-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    write_sent_frames(&work.join("sent.i420"));

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (aula, _events) = support::join(&server, "interop", "aula", Role::Teacher).await;
    support::publish_camera(&aula, 320, 180, 15).await;
    aula.publish_audio(SyntheticAudioSource::new(TONE_HZ as f32), "mic")
        .await
        .expect("audio publishes");

    let mut child = Command::new(&python)
        .arg(dir.join("client.py"))
        // The signaling endpoint, as docs/protocol.md names it.
        .arg(format!("{}/rtc", server.ws_url()))
        .arg("interop")
        .arg(support::token("interop", "aiortc", Role::Student))
        .arg(work.join("sent.i420"))
        .arg(&work)
        .arg(SECONDS_IN_ROOM.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("client.log")).expect("log file"))
        .spawn()
        .expect("the venv's python runs");
    // While aiortc is in the room, watch what the Aula participant decodes from it (its
    // subscription ends when aiortc leaves).
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut frames, mut stamped, mut samples, mut level) = (0u64, 0u64, 0u64, 0f64);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client.py") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "client.py did not finish in time; its log: {}",
                std::fs::read_to_string(work.join("client.log")).unwrap_or_default()
            );
        }
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("client output");
    let log = std::fs::read_to_string(work.join("client.log")).unwrap_or_default();
    assert!(status.success(), "client.py failed: {log}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("a JSON summary");

    assert_eq!(summary["errors"], serde_json::json!([]), "{log}");

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
    let received: Vec<(String, String)> = summary["received_from"]
        .as_array()
        .expect("received_from")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_owned(),
                r[1][0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for kind in ["audio", "video"] {
        assert!(
            received.contains(&(kind.to_owned(), aula_id.clone())),
            "{kind} from {aula_id}: {summary}"
        );
    }

    // What aiortc decoded: H.264 frames whose stamps survived, and the tone.
    assert!(
        summary["video_frames"].as_u64().unwrap_or(0) >= 30,
        "aiortc decoded too few frames: {summary}\n{log}"
    );
    let decoded = read_received_frames(&work.join("video.i420"));
    let stamps: Vec<u32> = decoded
        .iter()
        .filter_map(read_stamp)
        .map(|s| s.sequence)
        .collect();
    assert!(
        stamps.len() * 2 >= decoded.len() && stamps.len() >= 10,
        "{} of {} frames aiortc decoded carry an intact stamp",
        stamps.len(),
        decoded.len()
    );
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "stamps in order: {stamps:?}"
    );
    let pcm: Vec<i16> = std::fs::read(work.join("audio.s16"))
        .expect("client.py wrote its decoded audio")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(pcm.len() >= 48_000, "aiortc decoded {} samples", pcm.len());
    let tone = tone_power(&pcm, TONE_HZ);
    for other in [330.0, 660.0, 1000.0] {
        assert!(
            tone > 20.0 * tone_power(&pcm, other),
            "aiortc hears {TONE_HZ} Hz ({tone:.0}) above {other} Hz ({:.0})",
            tone_power(&pcm, other)
        );
    }

    // What the Aula participant decoded from aiortc: H.264 with its stamps intact, and sound.
    assert!(
        frames >= 30 && stamped >= 20,
        "the Aula participant decoded {frames} frames from aiortc, {stamped} stamped"
    );
    assert!(
        samples >= 48_000 && level > 500.0,
        "the Aula participant decoded {samples} samples from aiortc at level {level}"
    );

    eprintln!(
        "aiortc decoded {} frames ({} of the last {} stamped) and {} samples; \
         the Aula participant decoded {frames} frames ({stamped} stamped) and {samples} samples",
        summary["video_frames"],
        stamps.len(),
        decoded.len(),
        summary["audio_samples"]
    );
    aula.disconnect().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
}
