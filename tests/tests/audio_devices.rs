//! Microphone and speaker through real audio devices without a sound card: a private
//! PulseAudio server provides two null sinks running in real time, like hardware. `pacat`
//! plays a 587 Hz tone into the first, whose monitor is the "microphone"; the second is the
//! "speaker". The teacher publishes the microphone; the
//! student decodes the tone at the right frequency and plays everyone through the speaker,
//! whose output an independent recorder (`parec`) hears at that frequency too. Muting
//! silences it; removing the source device is reported as a lost device.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::devices::{self, DeviceEvent, DeviceKind, Microphone, Speaker};
use aula_core::media::AudioFrame;
use aula_core::AudioSink;
use aula_protocol::{ParticipantId, Role, TrackSid};
use aula_server::{Server, ServerConfig};

use crate::support;

use support::pulse::{gaps, rms, steady_frequency, Pulse};

const TONE_HZ: f64 = 587.0;

/// Passes decoded audio to the speaker and keeps the last seconds of it.
struct Tap {
    speaker: Arc<Speaker>,
    decoded: Mutex<Vec<i16>>,
}

impl AudioSink for Tap {
    fn on_audio_frame(&self, participant: &ParticipantId, track: &TrackSid, frame: &AudioFrame) {
        self.speaker.on_audio_frame(participant, track, frame);
        let mut decoded = self.decoded.lock().unwrap();
        decoded.extend_from_slice(&frame.samples);
        let excess = decoded.len().saturating_sub(48_000 * 3);
        decoded.drain(..excess);
    }
}

impl Tap {
    fn last(&self, samples: usize) -> Vec<i16> {
        let decoded = self.decoded.lock().unwrap();
        decoded[decoded.len().saturating_sub(samples)..].to_vec()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microphone_tone_is_decoded_and_played_at_its_frequency() {
    let alone = support::exclusive().await;
    support::init_test_log();
    let pulse = Pulse::start(
        "devices",
        &[
            "load-module module-null-sink sink_name=aula_room rate=48000 channels=1",
            "load-module module-null-sink sink_name=aula_speaker rate=48000 channels=2",
        ],
    );
    let _tone = pulse.play_tone("aula_room", TONE_HZ);
    // cpal finds the server through the environment (which only a test that runs alone changes).
    let _env = alone.set_env(&[("PULSE_SERVER", Some(pulse.server()))]);

    let microphones = devices::microphones().expect("microphones listed");
    let tone = microphones
        .iter()
        .find(|m| m.id.ends_with(":aula_room.monitor"))
        .unwrap_or_else(|| panic!("the tone's source is listed: {microphones:?}"));
    assert!(!tone.formats.is_empty());
    let speakers = devices::speakers().expect("speakers listed");
    let sink = speakers
        .iter()
        .find(|s| s.id.ends_with(":aula_speaker"))
        .unwrap_or_else(|| panic!("the null sink is listed: {speakers:?}"));

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _teacher_events) = support::join(&server, "audio", "t1", Role::Teacher).await;
    let (student, _student_events) = support::join(&server, "audio", "s1", Role::Student).await;
    let speaker = Arc::new(Speaker::open(Some(&sink.id)).expect("the speaker opens"));
    let tap = Arc::new(Tap {
        speaker: Arc::clone(&speaker),
        decoded: Mutex::new(Vec::new()),
    });
    student.set_audio_sink(Some(Arc::clone(&tap) as Arc<dyn AudioSink>));

    let microphone = Microphone::open(Some(&tone.id)).expect("the microphone opens");
    let mut mic_events = microphone.monitor().events();
    let mic_stats = microphone.stats();
    assert_eq!(mic_stats.device_rate, 48_000);
    let published = teacher
        .publish_audio(microphone, "microphone")
        .await
        .expect("the microphone is published");

    // The student decodes the tone at its frequency.
    let deadline = Instant::now() + Duration::from_secs(30);
    let decoded = loop {
        let last = tap.last(48_000);
        if last.len() == 48_000 && rms(&last) > 2_000.0 {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "no tone decoded in time: {} samples, rms {:.0}",
            last.len(),
            rms(&last)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let heard = steady_frequency(&decoded, 48_000).expect("a tone");
    assert!(
        (heard - TONE_HZ).abs() < 3.0,
        "decoded {heard:.1} Hz, sent {TONE_HZ} Hz"
    );
    // Continuous: not chopped by a capture queue running dry.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = tap.last(96_000);
    // (A machine busy with other work starves real-time audio now and then, pacat's tone
    // included; the tolerance below is for that, not for a capture path that drops audio.)
    assert!(
        gaps(&steady) <= 20,
        "{} of 100 blocks silent in two seconds",
        gaps(&steady)
    );

    // The speaker plays it: an independent recording of the sink hears the same tone.
    // (parec takes a moment to start recording.)
    let recorded = tokio::task::block_in_place(|| pulse.record("aula_speaker.monitor", 4.0));
    assert!(
        recorded.len() > 96_000,
        "{} samples recorded",
        recorded.len()
    );
    // The last two seconds: past parec's start, which may catch the stream settling.
    let recorded = &recorded[recorded.len() - 96_000..];
    let level = rms(recorded);
    assert!(level > 1_000.0, "the speaker is too quiet: rms {level:.0}");
    let played_hz = steady_frequency(recorded, 48_000).expect("a tone");
    assert!(
        (played_hz - TONE_HZ).abs() < 3.0,
        "played {played_hz:.1} Hz, sent {TONE_HZ} Hz"
    );
    assert!(
        gaps(recorded) <= 30,
        "{} of 100 blocks played silent ({:?}, {:?})",
        gaps(recorded),
        speaker.stats(),
        recorded
            .chunks(960)
            .map(|b| rms(b) as u32)
            .collect::<Vec<_>>()
    );
    let playout = speaker.stats();
    assert!(playout.played_ms > 1_000.0, "{playout:?}");
    assert!(playout.target_ms <= 200.0, "{playout:?}");

    // Muting the microphone silences the speaker.
    teacher
        .set_track_muted(&published.sid, true)
        .await
        .expect("muted");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let muted = tokio::task::block_in_place(|| pulse.record("aula_speaker.monitor", 2.0));
    let muted_level = rms(&muted[muted.len() / 4..]);
    assert!(
        muted_level < 100.0,
        "muted, the speaker still plays at rms {muted_level:.0}"
    );

    // The source going away is reported on the microphone, not a crash.
    let module = pulse
        .pactl(&["list", "short", "modules"])
        .and_then(|modules| {
            modules
                .lines()
                .find(|l| l.contains("sink_name=aula_room"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .expect("the microphone's module is listed");
    pulse
        .pactl(&["unload-module", &module])
        .expect("the source is removed");
    let lost = tokio::time::timeout(Duration::from_secs(10), mic_events.recv())
        .await
        .expect("the loss is reported")
        .expect("an event");
    assert!(
        matches!(
            &lost,
            DeviceEvent::Lost {
                kind: DeviceKind::Microphone,
                ..
            }
        ),
        "{lost:?}"
    );
    assert!(teacher.is_connected(), "the room carries on");

    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
}
