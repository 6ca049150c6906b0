//! Muting a track without renegotiation: the media keeps flowing (black video, silence), the
//! others are told, late joiners see the flag, and unmuting brings the picture and sound back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::media::{AudioFrame, SyntheticAudioSource};
use aula_core::signal_client::{SignalClient, SignalError};
use aula_core::{AudioSink, Room, RoomError, RoomEvent};
use aula_protocol::{
    ClientMessage, ErrorCode, MediaKind, ParticipantId, Role, TrackSid, PROTOCOL_VERSION,
};
use aula_server::{Server, ServerConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

/// Keeps the mean absolute level of the last few decoded audio frames.
#[derive(Default)]
struct LevelMeter {
    recent: Mutex<Vec<f64>>,
}

impl LevelMeter {
    fn level(&self) -> f64 {
        let recent = self.recent.lock().unwrap();
        if recent.is_empty() {
            return -1.0;
        }
        recent.iter().sum::<f64>() / recent.len() as f64
    }
}

impl AudioSink for LevelMeter {
    fn on_audio_frame(&self, _: &ParticipantId, _: &TrackSid, frame: &AudioFrame) {
        let mean = frame
            .samples
            .iter()
            .map(|s| f64::from(s.unsigned_abs()))
            .sum::<f64>()
            / frame.samples.len().max(1) as f64;
        let mut recent = self.recent.lock().unwrap();
        recent.push(mean);
        let excess = recent.len().saturating_sub(10);
        recent.drain(..excess);
    }
}

async fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_mute_event(events: &mut UnboundedReceiver<RoomEvent>) -> (TrackSid, bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.expect("events open") {
                RoomEvent::TrackMuted {
                    track_sid, muted, ..
                } => return (track_sid, muted),
                _ => continue,
            }
        }
    })
    .await
    .expect("a track_muted event arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_sends_black_and_silence_tells_others_and_unmuting_restores() {
    let _suite = support::shared().await;
    support::init_test_log();
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _teacher_events) = support::join(&server, "mute", "t1", Role::Teacher).await;
    let (student, mut student_events) = support::join(&server, "mute", "s1", Role::Student).await;
    let meter = Arc::new(LevelMeter::default());
    student.set_audio_sink(Some(Arc::clone(&meter) as Arc<dyn AudioSink>));

    support::publish_camera(&teacher, 320, 180, 15).await;
    let mic = teacher
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .expect("audio publishes")
        .sid;
    let camera = teacher
        .stats()
        .published
        .iter()
        .find(|p| p.kind == MediaKind::Video)
        .map(|p| p.track_sid.clone())
        .expect("the camera is published");

    wait_until(
        "the student sees and hears the teacher",
        Duration::from_secs(30),
        || support::stamped_frames_from(&student, "t1") >= 10 && meter.level() > 1000.0,
    )
    .await;

    // Mute both. The student is told about each, the picture goes black (decoded frames keep
    // coming, stamps stop) and the sound goes quiet, all without a new negotiation.
    teacher.set_track_muted(&camera, true).await.expect("mute");
    teacher.set_track_muted(&mic, true).await.expect("mute");
    assert_eq!(teacher.is_track_muted(&mic), Some(true));
    let mut told = vec![
        next_mute_event(&mut student_events).await,
        next_mute_event(&mut student_events).await,
    ];
    told.sort();
    let mut expected = vec![(camera.clone(), true), (mic.clone(), true)];
    expected.sort();
    assert_eq!(told, expected);
    let flags: Vec<bool> = student
        .remote_participants()
        .iter()
        .flat_map(|p| p.tracks.iter().map(|t| t.muted))
        .collect();
    assert_eq!(flags, [true, true], "the student's view of the tracks");

    wait_until("the sound is silent", Duration::from_secs(10), || {
        meter.level() < 50.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let video = |room: &Room| {
        room.stats()
            .received
            .into_iter()
            .find(|r| r.kind == MediaKind::Video)
            .expect("video received")
    };
    let before = video(&student);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = video(&student);
    assert!(
        after.frames_decoded >= before.frames_decoded + 10,
        "black pictures keep flowing while muted: {} -> {}",
        before.frames_decoded,
        after.frames_decoded
    );
    assert_eq!(
        after.frames_stamped_ok, before.frames_stamped_ok,
        "no camera picture is sent while muted"
    );

    // A late joiner learns the flags from its join.
    let (late, _late_events) = support::join(&server, "mute", "s2", Role::Student).await;
    let late_flags: Vec<bool> = late
        .remote_participants()
        .iter()
        .filter(|p| p.identity == "t1")
        .flat_map(|p| p.tracks.iter().map(|t| t.muted))
        .collect();
    assert_eq!(late_flags, [true, true]);

    // Unmute: the picture and the sound come back.
    teacher
        .set_track_muted(&camera, false)
        .await
        .expect("unmute");
    teacher.set_track_muted(&mic, false).await.expect("unmute");
    let stamped = after.frames_stamped_ok;
    wait_until(
        "the picture and sound return",
        Duration::from_secs(10),
        || support::stamped_frames_from(&student, "t1") >= stamped + 10 && meter.level() > 1000.0,
    )
    .await;
    assert!(!next_mute_event(&mut student_events).await.1, "unmuted");

    // A track this client does not publish is refused, locally and by the server (even when
    // it is someone else's).
    let unknown = TrackSid("TR_ffffffff".into());
    assert!(matches!(
        teacher.set_track_muted(&unknown, true).await,
        Err(RoomError::InvalidArgument(_))
    ));
    let (raw, _raw_events) = SignalClient::connect(&server.ws_url())
        .await
        .expect("ws opens");
    let id = raw.next_id();
    raw.request(ClientMessage::Join {
        id,
        protocol_version: PROTOCOL_VERSION,
        room: "mute".into(),
        token: support::token("mute", "raw", Role::Student),
        auto_subscribe: false,
    })
    .await
    .expect("raw client joins");
    for sid in [unknown, mic.clone()] {
        let id = raw.next_id();
        let refused = raw
            .request(ClientMessage::SetTrackMuted {
                id,
                sid,
                muted: true,
            })
            .await;
        assert!(
            matches!(
                refused,
                Err(SignalError::Refused {
                    code: ErrorCode::UnknownTrack,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(teacher.is_track_muted(&mic), Some(false), "nothing changed");
    for room in [teacher, student, late] {
        room.disconnect().await;
    }
    server.shutdown().await;
}
