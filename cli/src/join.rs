//! `aula join`: a headless participant with synthetic sources, or this machine's camera,
//! microphone, speaker and screen.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::devices::DeviceEvent;
use aula_core::netsim::{LinkSettings, NetworkImpairment};
use aula_core::{ChatDraft, ReceivedStats, Room, RoomError, RoomEvent, RoomOptions, RoomStats};
use aula_protocol::{ErrorCode, MediaKind, Placement, TrackSource};
use clap::Args;
use serde_json::json;

use crate::classroom_log::ClassroomLog;
use crate::join_publish::{Nudge, Publisher};

/// Arguments of `aula join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Server URL, e.g. ws://127.0.0.1:7880.
    #[arg(long, env = "AULA_URL")]
    url: String,
    /// Access token (see `aula token`).
    #[arg(long, env = "AULA_TOKEN")]
    token: String,
    /// What to publish, comma-separated: `video` and `audio` (synthetic: a stamped picture
    /// and a tone), `camera`, `mic` and `screen` (this machine's devices; see `aula
    /// devices`), or `none`. Each is published once the participant may: at once in a call,
    /// on stage in a class (waiting in the lobby and the audience), and again after a return
    /// to the stage.
    #[arg(long, default_value = "video,audio")]
    publish: String,
    /// The camera to publish with `--publish camera` (an id from `aula devices`; default the
    /// first). It opens at the format nearest `--resolution` and `--fps`.
    #[arg(long)]
    pub(crate) camera: Option<String>,
    /// The microphone to publish with `--publish mic` (default: the system's).
    #[arg(long)]
    pub(crate) microphone: Option<String>,
    /// The screen or window to share with `--publish screen` (`screen:N` or `window:ID`;
    /// default the primary screen of `$DISPLAY`).
    #[arg(long)]
    pub(crate) screen: Option<String>,
    /// Frames per second of the screen share.
    #[arg(long, default_value_t = 15)]
    pub(crate) screen_fps: u32,
    /// Leave the mouse cursor out of the screen share.
    #[arg(long)]
    pub(crate) no_cursor: bool,
    /// Play everyone's audio through this speaker (`default` for the system's).
    #[arg(long)]
    speaker: Option<String>,
    /// Video resolution WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_resolution)]
    pub(crate) resolution: (u32, u32),
    /// Video frame rate.
    #[arg(long, default_value_t = 30)]
    pub(crate) fps: u32,
    /// Video bitrate in kbit/s (default scales with resolution).
    #[arg(long)]
    pub(crate) bitrate_kbps: Option<u32>,
    /// Leave after this many seconds (default: stay until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Write the final stats as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Do not subscribe to others' tracks.
    #[arg(long)]
    no_subscribe: bool,
    /// Drop this percentage of media packets, each way (testing bad networks).
    #[arg(long, value_parser = parse_percent)]
    loss: Option<f64>,
    /// Add this one-way delay to media, in ms, each way.
    #[arg(long)]
    delay: Option<u64>,
    /// Cap media bandwidth at this many kbit/s, each way.
    #[arg(long)]
    cap_kbps: Option<u64>,
    /// Send this chat message once in the room and admitted (repeatable; sent in order).
    #[arg(long = "chat", value_name = "TEXT")]
    chat: Vec<String>,
    /// Raise a hand once admitted (a teacher's stage invitation then puts it on stage at once).
    #[arg(long)]
    raise_hand: bool,
    /// Decline stage invitations (a headless participant accepts them by default).
    #[arg(long)]
    decline_stage: bool,
    /// Draw this many strokes on the room's whiteboard (streamed point by point, about 15
    /// strokes a second) while in the room; the stats file reports the board at the end.
    #[arg(long, default_value_t = 0)]
    whiteboard_strokes: usize,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&value) {
        return Err("a percentage is between 0 and 100".into());
    }
    Ok(value)
}

/// The impairment `--loss`, `--delay` and `--cap-kbps` ask for, if any.
fn impairment(args: &JoinArgs) -> Option<NetworkImpairment> {
    if args.loss.is_none() && args.delay.is_none() && args.cap_kbps.is_none() {
        return None;
    }
    Some(NetworkImpairment::symmetric(LinkSettings {
        loss: args.loss.unwrap_or(0.0) / 100.0,
        delay: Duration::from_millis(args.delay.unwrap_or(0)),
        cap_bps: args.cap_kbps.map(|k| k * 1000),
        ..LinkSettings::default()
    }))
}

/// Parses `1280x720`.
pub fn parse_resolution(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{text:?} is not WIDTHxHEIGHT"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err("resolution must be even, between 16x16 and 3840x2160".into());
    }
    Ok((w, h))
}

/// What `--publish` names.
#[derive(Debug, Default)]
pub(crate) struct Publish {
    pub(crate) video: bool,
    pub(crate) audio: bool,
    pub(crate) camera: bool,
    pub(crate) microphone: bool,
    pub(crate) screen: bool,
}

fn parse_publish(text: &str) -> anyhow::Result<Publish> {
    let mut publish = Publish::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "video" => publish.video = true,
            "audio" => publish.audio = true,
            "camera" => publish.camera = true,
            "mic" | "microphone" => publish.microphone = true,
            "screen" => publish.screen = true,
            "none" => {}
            other => {
                bail!("--publish takes video, audio, camera, mic, screen or none, not {other:?}")
            }
        }
    }
    if publish.video && publish.camera {
        bail!("--publish takes video (synthetic) or camera, not both");
    }
    if publish.audio && publish.microphone {
        bail!("--publish takes audio (synthetic) or mic, not both");
    }
    Ok(publish)
}

/// Joins, runs, and writes the stats.
pub fn run(args: JoinArgs) -> anyhow::Result<()> {
    let publish = parse_publish(&args.publish)?;
    if args.fps == 0 || args.fps > 120 {
        bail!("--fps must be between 1 and 120");
    }
    if args.screen_fps == 0 || args.screen_fps > 60 {
        bail!("--screen-fps must be between 1 and 60");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args, publish))
}

async fn run_async(args: JoinArgs, publish: Publish) -> anyhow::Result<()> {
    let options = RoomOptions {
        auto_subscribe: !args.no_subscribe,
        network: impairment(&args),
        ..RoomOptions::default()
    };
    let (room, mut events) = Room::connect(&args.url, &args.token, options)
        .await
        .with_context(|| format!("cannot join the room at {}", args.url))?;
    let joined_at = Instant::now();
    let me = room.local_participant();
    eprintln!(
        "joined room {} as {} ({}) in {:.0} ms, in the {}",
        room.info().name,
        me.identity,
        me.role,
        room.stats().join_ms,
        room.placement()
    );
    let args = Arc::new(args);
    let log = Arc::new(Mutex::new(ClassroomLog::new(room.placement(), joined_at)));
    let (lost_tx, mut lost) = tokio::sync::mpsc::unbounded_channel();
    let mut publisher =
        Publisher::start(room.clone(), Arc::clone(&args), &publish, lost_tx.clone());
    if let Some(speaker) = &args.speaker {
        let monitor = local::play_through(&room, speaker)?;
        let mut events = monitor.events();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let _ = lost_tx.send(event);
            }
        });
    }

    let drawing = (args.whiteboard_strokes > 0)
        .then(|| tokio::spawn(draw_strokes(room.whiteboard(), args.whiteboard_strokes)));
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Chat and a raised hand go out once the participant is admitted.
    let mut greeted = None;
    if room.placement() != Placement::Lobby {
        greeted = Some(tokio::spawn(greet(
            room.clone(),
            Arc::clone(&args),
            Arc::clone(&log),
            interactive,
        )));
    }

    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut status = tokio::time::interval(Duration::from_secs(1));
    let mut history = ReceivedHistory::default();
    let ended_by_server = loop {
        let sleep_until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep_until_deadline => break None,
            _ = tokio::signal::ctrl_c() => break None,
            _ = status.tick() => {
                let stats = room.stats();
                history.note(&stats);
                print_status(room.placement(), &stats, interactive);
            }
            Some(err) = publisher.failures.recv() => break Some(format!("{err:#}")),
            Some(event) = lost.recv() => match event {
                DeviceEvent::Lost { kind, id, reason } => {
                    status_line(interactive, &format!("{kind} {id} lost: {reason}"));
                }
                other => status_line(interactive, &format!("{other:?}")),
            },
            event = events.recv() => {
                let Some(event) = event else { break Some("event stream ended".into()) };
                match event {
                    RoomEvent::Disconnected { reason, message } => {
                        break Some(match message {
                            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                            _ => reason.to_string(),
                        })
                    }
                    RoomEvent::ParticipantJoined(p) => status_line(interactive, &format!("{} joined", p.identity)),
                    RoomEvent::ParticipantLeft { participant_id, .. } => status_line(interactive, &format!("{participant_id} left")),
                    RoomEvent::Admitted => status_line(interactive, "admitted"),
                    RoomEvent::StageInvitation { from } => {
                        let accept = !args.decline_stage;
                        status_line(
                            interactive,
                            &format!("{} the stage invitation of {from}", if accept { "accepting" } else { "declining" }),
                        );
                        let room = room.clone();
                        tokio::spawn(async move {
                            if let Err(err) = room.answer_stage_invitation(accept).await {
                                eprintln!("answering the stage invitation failed: {err}");
                            }
                        });
                    }
                    RoomEvent::ChatReceived(message) => {
                        let from = message.from.as_deref().unwrap_or("[system]");
                        status_line(interactive, &format!("chat from {from}: {}", message.text));
                        lock(&log).received_chat(&message);
                    }
                    RoomEvent::LocalTrackEnded { track_sid } => publisher.nudge(Nudge::Ended(track_sid)),
                    RoomEvent::Reconnected { .. } => publisher.nudge(Nudge::Reconnected),
                    _ => {}
                }
                // Whatever moved it (admission, the stage, permissions, a rejoin), note where it
                // is and publish what it may publish now.
                let placement = room.placement();
                if lock(&log).placed(placement, Instant::now()) {
                    status_line(interactive, &format!("now in the {placement}"));
                }
                publisher.nudge(Nudge::Check);
                if greeted.is_none() && placement != Placement::Lobby {
                    greeted = Some(tokio::spawn(greet(room.clone(), Arc::clone(&args), Arc::clone(&log), interactive)));
                }
            }
        }
    };
    if interactive {
        eprintln!();
    }
    if let Some(greeted) = greeted {
        greeted.abort();
    }
    let stats = history.completed(room.stats());
    let classroom = lock(&log).document(Instant::now());
    let identity = me.identity.clone();
    let room_name = room.info().name;
    if let Some(drawing) = drawing {
        drawing.abort();
    }
    let board = room.whiteboard();
    // Let this client's last strokes be stored before leaving.
    let settle = Instant::now() + Duration::from_secs(5);
    while board.unacked() > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let whiteboard = json!({ "items": board.item_count(), "digest": board.digest() });
    room.disconnect().await;
    if let Some(path) = &args.stats_json {
        let mut document = stats_document(&identity, &room_name, &stats);
        document["whiteboard"] = whiteboard;
        document["classroom"] = classroom;
        std::fs::write(path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(reason) = ended_by_server {
        bail!("the session ended early: {reason}");
    }
    Ok(())
}

fn lock(log: &Mutex<ClassroomLog>) -> std::sync::MutexGuard<'_, ClassroomLog> {
    // The log is plain data; a panic elsewhere cannot leave it inconsistent.
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends `--chat` messages in order, then raises the hand (`--raise-hand`), once admitted.
async fn greet(room: Room, args: Arc<JoinArgs>, log: Arc<Mutex<ClassroomLog>>, interactive: bool) {
    for text in &args.chat {
        let draft = ChatDraft {
            text: text.clone(),
            ..ChatDraft::default()
        };
        let mut sent = room.send_chat(draft.clone()).await;
        if let Err(RoomError::Refused {
            code: ErrorCode::RateLimited,
            ..
        }) = sent
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sent = room.send_chat(draft).await;
        }
        match sent {
            Ok(message) => {
                lock(&log).sent_chat();
                status_line(
                    interactive,
                    &format!("chat sent (#{}): {text}", message.seq),
                );
            }
            Err(err) => status_line(interactive, &format!("chat not sent: {err}")),
        }
    }
    if args.raise_hand {
        match room.raise_hand().await {
            Ok(()) => status_line(interactive, "hand raised"),
            Err(err) => status_line(interactive, &format!("hand not raised: {err}")),
        }
    }
}

/// This machine's devices, each behind the feature that builds its backend.
pub(crate) mod local {
    use super::JoinArgs;
    #[allow(unused_imports)]
    use anyhow::Context;
    #[allow(unused_imports)]
    use aula_core::devices::{self, DeviceMonitor};
    use aula_core::Room;
    use aula_protocol::TrackInfo;

    #[cfg(all(
        feature = "camera",
        any(target_os = "linux", target_os = "macos", target_os = "windows")
    ))]
    pub async fn publish_camera(
        room: &Room,
        args: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        let (width, height) = args.resolution;
        let camera = devices::CameraSource::open(
            args.camera.as_deref(),
            devices::CameraRequest {
                width,
                height,
                fps: args.fps,
            },
        )
        .context("cannot open the camera")?;
        let format = camera.format();
        eprintln!("camera {}: {format}", camera.monitor().id());
        let monitor = camera.monitor();
        let bitrate_bps = args
            .bitrate_kbps
            .map(|k| k * 1000)
            .unwrap_or_else(|| super::default_bitrate_bps(format.width, format.height, format.fps));
        let track = room
            .publish_video(
                camera,
                aula_core::VideoPublishOptions {
                    bitrate_bps,
                    ..aula_core::VideoPublishOptions::default()
                },
            )
            .await
            .context("cannot publish the camera")?;
        Ok((track, monitor))
    }

    #[cfg(not(all(
        feature = "camera",
        any(target_os = "linux", target_os = "macos", target_os = "windows")
    )))]
    pub async fn publish_camera(
        _: &Room,
        _: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        anyhow::bail!(
            "this aula was built without camera support (build it with `--features devices`)"
        )
    }

    #[cfg(feature = "audio-devices")]
    pub async fn publish_microphone(
        room: &Room,
        args: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        let microphone = devices::Microphone::open(args.microphone.as_deref())
            .context("cannot open the microphone")?;
        let monitor = microphone.monitor();
        eprintln!("microphone {}", monitor.id());
        let track = room
            .publish_audio(microphone, "microphone")
            .await
            .context("cannot publish the microphone")?;
        Ok((track, monitor))
    }

    #[cfg(not(feature = "audio-devices"))]
    pub async fn publish_microphone(
        _: &Room,
        _: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        anyhow::bail!(
            "this aula was built without audio devices (build it with `--features devices`)"
        )
    }

    #[cfg(feature = "audio-devices")]
    pub fn play_through(room: &Room, speaker: &str) -> anyhow::Result<DeviceMonitor> {
        let speaker = devices::Speaker::open(Some(speaker)).context("cannot open the speaker")?;
        let monitor = speaker.monitor();
        eprintln!("speaker {}", monitor.id());
        room.set_audio_sink(Some(std::sync::Arc::new(speaker)));
        Ok(monitor)
    }

    #[cfg(not(feature = "audio-devices"))]
    pub fn play_through(_: &Room, _: &str) -> anyhow::Result<DeviceMonitor> {
        anyhow::bail!(
            "this aula was built without audio devices (build it with `--features devices`)"
        )
    }

    #[cfg(all(
        feature = "screen",
        any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly",
            target_os = "macos",
            target_os = "windows"
        )
    ))]
    pub async fn publish_screen(
        room: &Room,
        args: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        use aula_core::VideoSource as _;
        let screen = devices::ScreenSource::open(
            args.screen.as_deref(),
            devices::ScreenOptions {
                fps: args.screen_fps,
                cursor: !args.no_cursor,
                display: None,
            },
        )
        .context("cannot open the screen")?;
        let (width, height) = (screen.width(), screen.height());
        eprintln!(
            "sharing {} {}x{} at {} fps",
            screen.monitor().id(),
            width,
            height,
            args.screen_fps
        );
        let monitor = screen.monitor();
        let bitrate_bps = args
            .bitrate_kbps
            .map(|k| k * 1000)
            .unwrap_or_else(|| super::screen_bitrate_bps(width, height, args.screen_fps));
        let track = room
            .publish_video(
                screen,
                aula_core::VideoPublishOptions::screen_share(bitrate_bps),
            )
            .await
            .context("cannot share the screen")?;
        Ok((track, monitor))
    }

    #[cfg(not(all(
        feature = "screen",
        any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly",
            target_os = "macos",
            target_os = "windows"
        )
    )))]
    pub async fn publish_screen(
        _: &Room,
        _: &JoinArgs,
    ) -> anyhow::Result<(TrackInfo, DeviceMonitor)> {
        anyhow::bail!(
            "this aula was built without screen sharing (build it with `--features devices`)"
        )
    }
}

#[cfg_attr(not(feature = "screen"), allow(dead_code))]
/// A screen share's bitrate: text needs far fewer bits than a camera, about 0.08 bit per
/// pixel per frame, within 300 kbit/s..4 Mbit/s (1080p at 15 fps: 2.5 Mbit/s).
fn screen_bitrate_bps(width: u32, height: u32, fps: u32) -> u32 {
    let bits = u64::from(width) * u64::from(height) * u64::from(fps) * 8 / 100;
    bits.clamp(300_000, 4_000_000) as u32
}

/// Draws `count` strokes on the board's first page, each streamed in three chunks.
async fn draw_strokes(board: aula_core::Whiteboard, count: usize) {
    let page = board.default_page();
    let deadline = Instant::now() + Duration::from_secs(10);
    while board.pages().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 0..count {
        let chunk = |part: usize| -> Vec<aula_protocol::whiteboard::Point> {
            (0..8)
                .map(|i| aula_protocol::whiteboard::Point {
                    x: (n % 40) as f32 * 20.0 + (part * 8 + i) as f32,
                    y: (n / 40) as f32 * 20.0 + ((part * 8 + i) as f32 * 0.5).sin() * 5.0,
                    pressure: 0.5,
                })
                .collect()
        };
        let id = board.add_stroke(page, "#1e88e5", 2.0, &chunk(0));
        for part in 1..3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = board.extend_stroke(page, &id, &chunk(part));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bitrate that gives the synthetic content clean pictures: ~0.1 bit per pixel at 30 fps.
/// The synthetic picture's bitrate at this size and rate: ~0.06 bit per pixel, 150 kbit/s to
/// 4 Mbit/s.
pub(crate) fn default_bitrate_bps(width: u32, height: u32, fps: u32) -> u32 {
    let pixels_per_second = u64::from(width) * u64::from(height) * u64::from(fps);
    (pixels_per_second / 18).clamp(150_000, 4_000_000) as u32
}

fn status_line(interactive: bool, text: &str) {
    if interactive {
        eprint!("\r\x1b[2K{text}\n");
    } else {
        eprintln!("{text}");
    }
}

fn print_status(placement: Placement, stats: &RoomStats, interactive: bool) {
    let mut line = format!("{placement} | ");
    if let Some(estimate) = &stats.send_estimate {
        line.push_str(&format!("uplink {:.0} kbps | ", estimate.target_kbps));
    }
    for p in &stats.published {
        line.push_str(&format!(
            "{} {} frames {:.0} kbps | ",
            p.kind, p.frames_sent, p.bitrate_kbps
        ));
    }
    for r in &stats.received {
        match r.kind {
            MediaKind::Audio => line.push_str(&format!(
                "{} audio {:.1}s | ",
                r.from,
                r.samples_decoded as f64 / 48_000.0
            )),
            _ => line.push_str(&format!(
                "{} {} {} frames {}x{} p50 {:.0} ms freezes {} | ",
                r.from,
                received_kind(r),
                r.frames_decoded,
                r.width,
                r.height,
                r.latency_ms.p50,
                r.freezes
            )),
        }
    }
    let line = line.trim_end_matches([' ', '|']);
    if interactive {
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    } else {
        eprintln!("{line}");
    }
}

/// Every track received during the session, with the latest figures seen for it.
/// `Room::stats` lists the tracks subscribed now; a publisher that left before this participant
/// did still belongs in the stats file, with what it delivered while it was there.
#[derive(Default)]
struct ReceivedHistory(std::collections::BTreeMap<String, ReceivedStats>);

impl ReceivedHistory {
    /// Takes the figures of the tracks `stats` lists.
    fn note(&mut self, stats: &RoomStats) {
        for received in &stats.received {
            self.0
                .insert(received.track_sid.0.clone(), received.clone());
        }
    }

    /// `last` with the tracks that ended before it added, in track id order.
    fn completed(mut self, mut last: RoomStats) -> RoomStats {
        self.note(&last);
        last.received = self.0.into_values().collect();
        last
    }
}

/// What the stats file calls a received track: `audio`, `video` (a camera) or `screen`.
fn received_kind(received: &ReceivedStats) -> &'static str {
    match (received.kind, received.source) {
        (MediaKind::Audio, _) => "audio",
        (_, TrackSource::ScreenShare) => "screen",
        _ => "video",
    }
}

/// The stats file: the documented fields first, everything else after.
fn stats_document(identity: &str, room: &str, stats: &RoomStats) -> serde_json::Value {
    let published: Vec<_> = stats
        .published
        .iter()
        .map(|p| {
            json!({
                "kind": p.kind,
                "track_sid": p.track_sid,
                "frames_sent": p.frames_sent,
                "bytes_sent": p.bytes_sent,
                "keyframes": p.keyframes,
                "bitrate_kbps": p.bitrate_kbps,
                "target_bitrate_kbps": p.target_bitrate_kbps,
            })
        })
        .collect();
    let received: Vec<_> = stats
        .received
        .iter()
        .map(|r| match r.kind {
            MediaKind::Audio => json!({
                "from": r.from,
                "kind": r.kind,
                "track_sid": r.track_sid,
                "samples_decoded": r.samples_decoded,
                "audio_level": r.audio_level,
            }),
            _ => json!({
                "from": r.from,
                "kind": received_kind(r),
                "track_sid": r.track_sid,
                "frames_decoded": r.frames_decoded,
                "frames_stamped_ok": r.frames_stamped_ok,
                "latency_ms": r.latency_ms,
                "freezes": r.freezes,
                "freeze_ms": r.freeze_ms,
                "longest_freeze_ms": r.longest_freeze_ms,
                "keyframe_requests": r.keyframe_requests,
                "first_frame_ms": r.first_frame_ms,
                "width": r.width,
                "height": r.height,
            }),
        })
        .collect();
    json!({
        "identity": identity,
        "room": room,
        "join_ms": stats.join_ms,
        "send_estimate": stats.send_estimate,
        "published": published,
        "received": received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_and_odd_sizes_are_refused() {
        assert_eq!(parse_resolution("1280x720"), Ok((1280, 720)));
        assert!(parse_resolution("1281x720").is_err());
        assert!(parse_resolution("big").is_err());
        assert!(parse_resolution("8x8").is_err());
    }

    #[test]
    fn percentages_parse_within_range() {
        assert_eq!(parse_percent("30"), Ok(30.0));
        assert_eq!(parse_percent("12.5%"), Ok(12.5));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("lots").is_err());
    }

    /// A received track's figures, as the core reports them.
    fn received_track(sid: &str, source: TrackSource, frames_decoded: u64) -> ReceivedStats {
        ReceivedStats {
            participant_id: aula_protocol::ParticipantId("PA_1".into()),
            from: "t1".into(),
            track_sid: aula_protocol::TrackSid(sid.into()),
            kind: source.kind(),
            source,
            frames_decoded,
            frames_stamped_ok: 0,
            latency_ms: Default::default(),
            freezes: 0,
            freeze_ms: 0.0,
            longest_freeze_ms: 0.0,
            keyframe_requests: 0,
            samples_decoded: 0,
            audio_level: 0.0,
            audio_frames_recovered: 0,
            audio_frames_concealed: 0,
            first_frame_ms: None,
            gaps_skipped: 0,
            stale_frames: 0,
            decoder_overflows: 0,
            loss_wait_ms: 0.0,
            layer: None,
            width: 1920,
            height: 1080,
        }
    }

    fn room_stats(received: Vec<ReceivedStats>) -> RoomStats {
        RoomStats {
            join_ms: 1.0,
            send_estimate: None,
            receive_recovery: Default::default(),
            sink_failures: 0,
            published: Vec::new(),
            received,
        }
    }

    #[test]
    fn a_track_that_ended_before_leaving_stays_in_the_stats_file() {
        let mut history = ReceivedHistory::default();
        history.note(&room_stats(vec![
            received_track("TR_1", TrackSource::Camera, 10),
            received_track("TR_2", TrackSource::ScreenShare, 5),
        ]));
        history.note(&room_stats(vec![
            received_track("TR_1", TrackSource::Camera, 40),
            received_track("TR_2", TrackSource::ScreenShare, 20),
        ]));
        // The screen share's publisher left; the camera is still there, further on.
        let last = history.completed(room_stats(vec![received_track(
            "TR_1",
            TrackSource::Camera,
            55,
        )]));
        let frames: Vec<(String, u64)> = last
            .received
            .iter()
            .map(|r| (r.track_sid.0.clone(), r.frames_decoded))
            .collect();
        assert_eq!(frames, vec![("TR_1".into(), 55), ("TR_2".into(), 20)]);
    }

    #[test]
    fn screen_shares_are_their_own_kind_in_the_stats_file() {
        let stats = room_stats(vec![
            received_track("TR_1", TrackSource::ScreenShare, 3),
            received_track("TR_1", TrackSource::Camera, 3),
            received_track("TR_1", TrackSource::Microphone, 3),
        ]);
        let document = stats_document("s1", "r1", &stats);
        let kinds: Vec<&str> = document["received"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["screen", "video", "audio"]);
        let screen = &document["received"][0];
        let camera = &document["received"][1];
        let fields = |v: &serde_json::Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            fields(screen),
            fields(camera),
            "a screen has video's fields"
        );
        assert_eq!(screen["width"], 1920);
    }

    #[test]
    fn publish_lists_parse() {
        let p = parse_publish("video,audio").unwrap();
        assert!(p.video && p.audio);
        let p = parse_publish("none").unwrap();
        assert!(!p.video && !p.audio);
        let p = parse_publish("camera, mic,screen").unwrap();
        assert!(p.camera && p.microphone && p.screen && !p.video && !p.audio);
        assert!(parse_publish("microphone").unwrap().microphone);
        assert!(parse_publish("smell").is_err());
        assert!(parse_publish("video,camera").is_err(), "one picture source");
        assert!(parse_publish("audio,mic").is_err(), "one sound source");
        assert_eq!(screen_bitrate_bps(1920, 1080, 15), 2_488_320);
        assert_eq!(screen_bitrate_bps(640, 480, 1), 300_000);
    }
}
