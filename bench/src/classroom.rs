//! The classroom under a full class on loopback: how fast a teacher's action reaches the
//! student it affects, how fast a student is seen once it accepts the stage, how fast chat
//! reaches everyone, and how fast a late joiner has a long chat history.
//!
//! Every participant's events are recorded with the time they reached it, so each figure runs
//! from the moment the action was asked for to the moment the affected client learned of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::media::{FrameStamp, SyntheticVideoSource, VideoFrame};
use aula_core::{
    ChatDraft, Percentiles, Room, RoomEvent, RoomOptions, VideoPublishOptions, VideoSink,
};
use aula_protocol::classroom::ChatKind;
use aula_protocol::token::unix_now;
use aula_protocol::{
    ChatMessage, Claims, MediaKind, ParticipantId, Placement, Role, RoomMode, RoomSettings,
    TrackSid,
};
use aula_server::classroom::RoomRecord;
use aula_server::storage::{open_database, RedbStorage, Storage, Write};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use clap::Args;
use serde::Serialize;
use tokio::sync::{mpsc::UnboundedReceiver, Notify};

use crate::harness::median;

/// Arguments of `aula-bench classroom`.
#[derive(Args, Debug, Clone)]
pub struct ClassroomArgs {
    /// Participants in the class, the teacher included.
    #[arg(long, default_value_t = 30)]
    pub participants: usize,
    /// Students brought on stage one after another (each: invite, accept, seen, muted, moved
    /// back to the audience).
    #[arg(long, default_value_t = 10)]
    pub stage_turns: usize,
    /// Chat messages the teacher sends to the class.
    #[arg(long, default_value_t = 20)]
    pub chat_messages: usize,
    /// Messages stored before the late joiners come.
    #[arg(long, default_value_t = 10_000)]
    pub history: usize,
    /// Late joiners, one after another.
    #[arg(long, default_value_t = 5)]
    pub late_joiners: usize,
    /// Video each student publishes on stage, WIDTHxHEIGHT.
    #[arg(long, default_value = "320x180")]
    pub resolution: String,
    /// Its frame rate.
    #[arg(long, default_value_t = 15)]
    pub fps: u32,
    /// Whole runs, each on a fresh server; the summary gives the median of each figure.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A teacher's action and the student's event it causes, per action.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ControlReport {
    /// `admit` → the student's `admitted`.
    pub admit_ms: Percentiles,
    /// `invite_to_stage` → the student's `stage_invitation`.
    pub invite_ms: Percentiles,
    /// The student's acceptance → it is on stage (its own `participant_updated`).
    pub accept_ms: Percentiles,
    /// `mute_participant` → the student's `track_muted` (by a moderator).
    pub mute_ms: Percentiles,
    /// `move_to_audience` → the student is in the audience.
    pub move_to_audience_ms: Percentiles,
}

/// One run's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClassroomReport {
    /// Participants, the teacher included.
    pub participants: usize,
    /// Control latency per action.
    pub control: ControlReport,
    /// From a student accepting the stage to every other participant decoding its first
    /// frame, over the stage turns (the goal: under 700 ms).
    pub stage_up_all_ms: Percentiles,
    /// The same, to the first viewer.
    pub stage_up_first_ms: Percentiles,
    /// Stage turns whose video every other participant decoded.
    pub stage_turns_seen: usize,
    /// Stage turns tried.
    pub stage_turns: usize,
    /// From the teacher's `send_chat` to each other participant's receipt, over every
    /// delivery.
    pub chat_delivery_ms: Percentiles,
    /// From `send_chat` until every other participant has the message, over the messages
    /// (the goal: p95 under 50 ms).
    pub chat_all_ms: Percentiles,
    /// Deliveries made and expected.
    pub chat_delivered: usize,
    /// See [`ClassroomReport::chat_delivered`].
    pub chat_expected: usize,
    /// Messages stored before the late joiners came.
    pub history_messages: usize,
    /// A late joiner: connect to `joined`, which holds the newest 200 messages.
    pub late_join_ms: Percentiles,
    /// A late joiner: connect to having every stored message (paging back with
    /// `chat_history`) (the goal: under 100 ms).
    pub late_history_ms: Percentiles,
    /// Join time into the same kind of room without chat, for comparison.
    pub empty_join_ms: Percentiles,
}

/// Runs `aula-bench classroom` and prints the report.
pub async fn run(args: ClassroomArgs) -> anyhow::Result<()> {
    let (width, height) = crate::harness::parse_resolution(&args.resolution)?;
    if args.participants < 3 {
        bail!("--participants must be at least 3 (a teacher and two students)");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let report = run_once(&args, width, height).await?;
        if !args.json {
            eprintln!("run {run}:");
            print(&report);
        }
        runs.push(report);
    }
    let summary = if runs.len() == 1 {
        runs[0].clone()
    } else {
        medians(&runs)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "runs": runs,
                "median": summary,
                "load_average": load_average(),
            }))?
        );
    } else {
        println!("median of {} runs:", runs.len());
        print(&summary);
        if let Some(load) = load_average() {
            println!("load average at the end: {load}");
        }
    }
    Ok(())
}

/// The 1/5/15-minute load averages, where the system tells them.
fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn print(r: &ClassroomReport) {
    let p = |name: &str, v: &Percentiles| {
        println!(
            "  {name:<34} p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
            v.p50, v.p95, v.max
        )
    };
    println!("  {} participants", r.participants);
    p("admit -> admitted", &r.control.admit_ms);
    p("invite -> stage_invitation", &r.control.invite_ms);
    p("accept -> on stage", &r.control.accept_ms);
    p("mute -> track_muted", &r.control.mute_ms);
    p(
        "move to audience -> in audience",
        &r.control.move_to_audience_ms,
    );
    p("stage-up: accept -> all decode", &r.stage_up_all_ms);
    p("stage-up: accept -> first decodes", &r.stage_up_first_ms);
    println!(
        "  stage turns seen by everyone: {}/{}",
        r.stage_turns_seen, r.stage_turns
    );
    p("chat: send -> each receipt", &r.chat_delivery_ms);
    p("chat: send -> all received", &r.chat_all_ms);
    println!(
        "  chat deliveries: {}/{}",
        r.chat_delivered, r.chat_expected
    );
    p(
        &format!("late join ({} stored): joined", r.history_messages),
        &r.late_join_ms,
    );
    p("late join: whole history", &r.late_history_ms);
    p("join into an empty room", &r.empty_join_ms);
}

/// Each figure's median over the runs.
fn medians(runs: &[ClassroomReport]) -> ClassroomReport {
    let pm = |pick: &dyn Fn(&ClassroomReport) -> Percentiles| Percentiles {
        p50: median(runs.iter().map(|r| pick(r).p50).collect()),
        p95: median(runs.iter().map(|r| pick(r).p95).collect()),
        max: median(runs.iter().map(|r| pick(r).max).collect()),
    };
    let count = |pick: &dyn Fn(&ClassroomReport) -> usize| {
        median(runs.iter().map(|r| pick(r) as f64).collect()) as usize
    };
    ClassroomReport {
        participants: runs[0].participants,
        control: ControlReport {
            admit_ms: pm(&|r| r.control.admit_ms),
            invite_ms: pm(&|r| r.control.invite_ms),
            accept_ms: pm(&|r| r.control.accept_ms),
            mute_ms: pm(&|r| r.control.mute_ms),
            move_to_audience_ms: pm(&|r| r.control.move_to_audience_ms),
        },
        stage_up_all_ms: pm(&|r| r.stage_up_all_ms),
        stage_up_first_ms: pm(&|r| r.stage_up_first_ms),
        stage_turns_seen: count(&|r| r.stage_turns_seen),
        stage_turns: runs[0].stage_turns,
        chat_delivery_ms: pm(&|r| r.chat_delivery_ms),
        chat_all_ms: pm(&|r| r.chat_all_ms),
        chat_delivered: count(&|r| r.chat_delivered),
        chat_expected: runs[0].chat_expected,
        history_messages: runs[0].history_messages,
        late_join_ms: pm(&|r| r.late_join_ms),
        late_history_ms: pm(&|r| r.late_history_ms),
        empty_join_ms: pm(&|r| r.empty_join_ms),
    }
}

/// A participant's events, each with the time it arrived.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(Instant, RoomEvent)>>,
    arrived: Notify,
}

impl Recorder {
    /// Records `events` as they arrive, until the room closes.
    fn start(mut events: UnboundedReceiver<RoomEvent>) -> Arc<Self> {
        let recorder = Arc::new(Self::default());
        let writer = Arc::clone(&recorder);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let now = Instant::now();
                writer
                    .events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((now, event));
                writer.arrived.notify_waiters();
            }
        });
        recorder
    }

    /// When the first event `matches` accepts arrived at or after `since`, waiting up to
    /// `timeout` for it.
    async fn first_after(
        &self,
        since: Instant,
        timeout: Duration,
        matches: impl Fn(&RoomEvent) -> bool,
    ) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            let found = self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|(at, event)| *at >= since && matches(event))
                .map(|(at, _)| *at);
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

/// When each publisher's first frame was decoded here.
#[derive(Default)]
struct FirstFrames(Mutex<HashMap<ParticipantId, Instant>>);

impl VideoSink for FirstFrames {
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        _track: &TrackSid,
        _frame: &VideoFrame,
        _stamp: Option<FrameStamp>,
    ) {
        if let Ok(mut first) = self.0.lock() {
            first
                .entry(participant.clone())
                .or_insert_with(Instant::now);
        }
    }
}

impl FirstFrames {
    fn of(&self, publisher: &ParticipantId) -> Option<Instant> {
        self.0.lock().ok()?.get(publisher).copied()
    }
}

struct Member {
    room: Room,
    id: ParticipantId,
    events: Arc<Recorder>,
    frames: Arc<FirstFrames>,
}

/// A token whose room (when nobody configured it yet) is a class, with a lobby or not.
fn class_token(room: &str, identity: &str, role: Role, lobby: bool) -> anyhow::Result<String> {
    let mut claims = Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 3600);
    claims.classroom = Some(RoomSettings {
        mode: RoomMode::Class,
        lobby,
        stage_capacity: 6,
        ..RoomSettings::default()
    });
    Ok(claims.sign(DEV_API_SECRET)?)
}

async fn join(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
    lobby: bool,
) -> anyhow::Result<Member> {
    let token = class_token(room, identity, role, lobby)?;
    let (room, events) = Room::connect(&server.ws_url(), &token, RoomOptions::default())
        .await
        .with_context(|| format!("{identity} cannot join"))?;
    let frames = Arc::new(FirstFrames::default());
    room.set_video_sink(Some(Arc::clone(&frames) as Arc<dyn VideoSink>));
    Ok(Member {
        id: room.local_participant().id,
        room,
        events: Recorder::start(events),
        frames,
    })
}

const WAIT: Duration = Duration::from_secs(10);

fn ms_since(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

async fn run_once(
    args: &ClassroomArgs,
    width: u32,
    height: u32,
) -> anyhow::Result<ClassroomReport> {
    let server = Server::start(ServerConfig::dev(0, 0)).await?;
    let room = "bench-class";
    let teacher = join(&server, room, "t1", Role::Teacher, true).await?;
    let mut students = Vec::new();
    for n in 1..args.participants {
        students.push(join(&server, room, &format!("s{n}"), Role::Student, true).await?);
    }
    let mut report = ClassroomReport {
        participants: args.participants,
        ..ClassroomReport::default()
    };

    // Admission, one student after another.
    let mut admit = Vec::new();
    for student in &students {
        let asked = Instant::now();
        teacher.room.admit(&student.id).await?;
        let at = student
            .events
            .first_after(asked, WAIT, |e| matches!(e, RoomEvent::Admitted))
            .await
            .context("a student was never admitted")?;
        admit.push(ms_since(asked, at));
    }
    report.control.admit_ms = Percentiles::of(&admit);
    // Let every subscriber connection settle before media is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Stage turns: invite, accept, publish, be seen by everyone, be muted, go back.
    let (mut invite, mut accept, mut mute, mut unstage) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut up_all, mut up_first) = (Vec::new(), Vec::new());
    let turns = args.stage_turns.min(students.len());
    report.stage_turns = turns;
    for student in students.iter().take(turns) {
        let asked = Instant::now();
        teacher.room.invite_to_stage(&student.id).await?;
        let invited = student
            .events
            .first_after(asked, WAIT, |e| {
                matches!(e, RoomEvent::StageInvitation { .. })
            })
            .await
            .context("a stage invitation never arrived")?;
        invite.push(ms_since(asked, invited));
        let accepted = Instant::now();
        student.room.answer_stage_invitation(true).await?;
        let me = student.id.clone();
        let on_stage = student
            .events
            .first_after(accepted, WAIT, |e| {
                matches!(e, RoomEvent::ParticipantUpdated(p) if p.id == me && p.placement == Placement::Stage)
            })
            .await
            .context("an accepted student never got on stage")?;
        accept.push(ms_since(accepted, on_stage));
        // On stage: it publishes, as an app does on `permissions_changed`.
        let track = student
            .room
            .publish_video(
                SyntheticVideoSource::new(width, height, args.fps)?,
                VideoPublishOptions {
                    bitrate_bps: ((width * height * args.fps) / 18).clamp(150_000, 4_000_000),
                    ..VideoPublishOptions::default()
                },
            )
            .await?;
        let viewers: Vec<&Member> = std::iter::once(&teacher)
            .chain(students.iter().filter(|s| s.id != student.id))
            .collect();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline
            && viewers.iter().any(|v| v.frames.of(&student.id).is_none())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen: Vec<f64> = viewers
            .iter()
            .filter_map(|v| v.frames.of(&student.id))
            .map(|at| ms_since(accepted, at))
            .collect();
        if seen.len() == viewers.len() {
            report.stage_turns_seen += 1;
            up_all.push(seen.iter().copied().fold(0.0, f64::max));
        }
        if let Some(first) = seen.iter().copied().reduce(f64::min) {
            up_first.push(first);
        }
        let asked = Instant::now();
        teacher
            .room
            .mute_participant(&student.id, MediaKind::Video)
            .await?;
        let sid = track.sid.clone();
        let muted = student
            .events
            .first_after(asked, WAIT, |e| {
                matches!(e, RoomEvent::TrackMuted { track_sid, muted: true, by_moderator: true, .. } if *track_sid == sid)
            })
            .await
            .context("a teacher's mute never reached the student")?;
        mute.push(ms_since(asked, muted));
        let asked = Instant::now();
        teacher.room.move_to_audience(&student.id).await?;
        let me = student.id.clone();
        let back = student
            .events
            .first_after(asked, WAIT, |e| {
                matches!(e, RoomEvent::ParticipantUpdated(p) if p.id == me && p.placement == Placement::Audience)
            })
            .await
            .context("a student never got back to the audience")?;
        unstage.push(ms_since(asked, back));
        // Let the ended track's renegotiations finish before the next turn.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.control.invite_ms = Percentiles::of(&invite);
    report.control.accept_ms = Percentiles::of(&accept);
    report.control.mute_ms = Percentiles::of(&mute);
    report.control.move_to_audience_ms = Percentiles::of(&unstage);
    report.stage_up_all_ms = Percentiles::of(&up_all);
    report.stage_up_first_ms = Percentiles::of(&up_first);

    // Chat from the teacher to the class, within its rate (5 a second).
    let (mut each, mut all) = (Vec::new(), Vec::new());
    for n in 0..args.chat_messages {
        let asked = Instant::now();
        let sent = teacher
            .room
            .send_chat(ChatDraft {
                text: format!("message {n}"),
                ..ChatDraft::default()
            })
            .await?;
        let mut last = None;
        for student in &students {
            report.chat_expected += 1;
            let seq = sent.seq;
            let got = student
                .events
                .first_after(
                    asked,
                    WAIT,
                    |e| matches!(e, RoomEvent::ChatReceived(m) if m.seq == seq),
                )
                .await;
            if let Some(at) = got {
                report.chat_delivered += 1;
                each.push(ms_since(asked, at));
                last = last.max(Some(at));
            }
        }
        if let Some(last) = last {
            all.push(ms_since(asked, last));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.chat_delivery_ms = Percentiles::of(&each);
    report.chat_all_ms = Percentiles::of(&all);

    for member in std::iter::once(&teacher).chain(&students) {
        member.room.disconnect().await;
    }
    server.shutdown().await;

    let (late_join, late_history, empty_join) = late_joiners(args).await?;
    report.history_messages = args.history;
    report.late_join_ms = Percentiles::of(&late_join);
    report.late_history_ms = Percentiles::of(&late_history);
    report.empty_join_ms = Percentiles::of(&empty_join);
    Ok(report)
}

/// Stores `args.history` messages for a room, starts a server on that store with a teacher in
/// the room, and times late joiners: to `joined`, and to the whole history. Then the same
/// joins into a room without chat.
async fn late_joiners(args: &ClassroomArgs) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let dir = std::env::temp_dir().join(format!(
        "aula-bench-classroom-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let room = "history";
    let now_ms = unix_now() * 1000;
    {
        let store = RedbStorage::new(open_database(Some(&dir))?)?;
        let mut record = RoomRecord::new(room, now_ms);
        record.settings = RoomSettings {
            mode: RoomMode::Class,
            ..RoomSettings::default()
        };
        record.configured = true;
        let mut writes = vec![Write::Room(record)];
        writes.extend((1..=args.history as u64).map(|seq| Write::Chat {
            room: room.to_owned(),
            class: 1,
            message: ChatMessage {
                seq,
                time: now_ms - (args.history as u64 - seq) * 10,
                from: Some(format!("s{}", seq % 29 + 1)),
                from_name: String::new(),
                to: None,
                kind: ChatKind::Message,
                text: format!("message {seq}: what page are we on?"),
                deleted: false,
            },
        }));
        store.write(&writes)?;
    }
    let mut config = ServerConfig::dev(0, 0);
    config.data_dir = Some(dir.clone());
    let server = Server::start(config).await?;
    let outcome = async {
        let teacher = join(&server, room, "t1", Role::Teacher, false).await?;
        let empty_teacher = join(&server, "no-history", "t1", Role::Teacher, false).await?;
        let (mut to_joined, mut to_all, mut empty) = (Vec::new(), Vec::new(), Vec::new());
        for n in 0..args.late_joiners {
            let identity = format!("late{n}");
            let token = class_token(room, &identity, Role::Student, false)?;
            let started = Instant::now();
            let (late, _events) =
                Room::connect(&server.ws_url(), &token, RoomOptions::default()).await?;
            to_joined.push(ms_since(started, Instant::now()));
            let mut have = late.classroom().chat.len();
            let mut before = late.classroom().chat.front().map(|m| m.seq);
            while let Some(seq) = before {
                let (page, more) = late.chat_history(Some(seq), Some(200)).await?;
                have += page.len();
                before = if more {
                    page.first().map(|m| m.seq)
                } else {
                    None
                };
            }
            to_all.push(ms_since(started, Instant::now()));
            if have != args.history {
                bail!("a late joiner got {have} of {} messages", args.history);
            }
            late.disconnect().await;
            let token = class_token("no-history", &identity, Role::Student, false)?;
            let started = Instant::now();
            let (fresh, _events) =
                Room::connect(&server.ws_url(), &token, RoomOptions::default()).await?;
            empty.push(ms_since(started, Instant::now()));
            fresh.disconnect().await;
        }
        teacher.room.disconnect().await;
        empty_teacher.room.disconnect().await;
        anyhow::Ok((to_joined, to_all, empty))
    }
    .await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
