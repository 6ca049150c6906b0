//! `aula load-test --class`: each room runs as a class — a teacher publishing, students brought
//! on stage (who then publish), an audience watching, and some left waiting in the lobby — and
//! the report adds what the classroom did to the media figures: admission and stage-up times,
//! chat delivery, and that nothing reached the lobby.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aula_core::frame_log::FrameLog;
use aula_core::media::{FrameStamp, SyntheticAudioSource, SyntheticVideoSource, VideoFrame};
use aula_core::{
    ChatDraft, Percentiles, Room, RoomEvent, RoomOptions, VideoPublishOptions, VideoSink,
};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, ParticipantId, Placement, Role, RoomMode, RoomSettings, TrackSid};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::join::default_bitrate_bps;
use crate::load_test::{LoadTestArgs, Participant};

/// Chat messages the teacher of each room sends.
const CHAT_MESSAGES: usize = 3;
/// How long the class steps (admission, stage, chat) may take before they count as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many students of each kind every room has.
#[derive(Clone, Copy, Debug)]
pub struct ClassShape {
    /// Students a teacher brings on stage (they publish).
    pub stage: usize,
    /// Students admitted to watch from the audience.
    pub audience: usize,
    /// Students left waiting in the lobby.
    pub lobby: usize,
}

impl ClassShape {
    /// Participants in each room, the teacher included.
    pub fn per_room(&self) -> usize {
        1 + self.stage + self.audience + self.lobby
    }
}

/// What the classroom did, over every room.
#[derive(Debug, Default, Serialize)]
pub struct ClassFigures {
    /// Students per room on stage, in the audience, in the lobby.
    pub stage: usize,
    /// See [`ClassFigures::stage`].
    pub audience: usize,
    /// See [`ClassFigures::stage`].
    pub lobby: usize,
    /// Students the teachers admitted, and how many learned it.
    pub admissions: usize,
    /// See [`ClassFigures::admissions`].
    pub admitted: usize,
    /// From a teacher's `admit` to the student's `admitted`.
    pub admit_ms: Percentiles,
    /// Students invited to the stage, and how many got there.
    pub invitations: usize,
    /// See [`ClassFigures::invitations`].
    pub on_stage: usize,
    /// From a teacher's invitation to the student on stage (its acceptance included).
    pub stage_ms: Percentiles,
    /// From a teacher's invitation to the teacher decoding the student's first frame.
    pub stage_video_ms: Percentiles,
    /// Chat messages the teachers sent, deliveries expected (to every admitted student) and
    /// made.
    pub chat_messages: usize,
    /// See [`ClassFigures::chat_messages`].
    pub chat_expected: usize,
    /// See [`ClassFigures::chat_messages`].
    pub chat_delivered: usize,
    /// From a teacher's `send_chat` to a student's receipt, over every delivery.
    pub chat_ms: Percentiles,
    /// Lobby students still waiting at the end.
    pub still_in_lobby: usize,
    /// Video frames and chat messages that reached lobby students (must be 0).
    pub lobby_frames: usize,
    /// See [`ClassFigures::lobby_frames`].
    pub lobby_chat: usize,
}

impl ClassFigures {
    /// What went wrong, if anything: a step some student never completed, or a leak into the
    /// lobby.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.admitted < self.admissions {
            problems.push(format!(
                "{} of {} admitted students never learned it",
                self.admissions - self.admitted,
                self.admissions
            ));
        }
        if self.on_stage < self.invitations {
            problems.push(format!(
                "{} of {} invited students never got on stage",
                self.invitations - self.on_stage,
                self.invitations
            ));
        }
        if self.chat_delivered < self.chat_expected {
            problems.push(format!(
                "{} of {} chat deliveries missing",
                self.chat_expected - self.chat_delivered,
                self.chat_expected
            ));
        }
        if self.lobby_frames > 0 || self.lobby_chat > 0 {
            problems.push(format!(
                "the lobby received {} frames and {} chat messages",
                self.lobby_frames, self.lobby_chat
            ));
        }
        problems
    }
}

/// The teacher's sink: every frame into the frame log, and when each publisher's first frame
/// was decoded.
#[derive(Default)]
struct TeacherSink {
    log: Arc<FrameLog>,
    first: Mutex<HashMap<ParticipantId, Instant>>,
}

impl VideoSink for TeacherSink {
    fn on_video_frame(
        &self,
        participant: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        self.log.on_video_frame(participant, track, frame, stamp);
        if let Ok(mut first) = self.first.lock() {
            first
                .entry(participant.clone())
                .or_insert_with(Instant::now);
        }
    }
}

/// What a student's events showed, and when.
#[derive(Default)]
struct Milestones {
    admitted: Option<Instant>,
    on_stage: Option<Instant>,
    chat: HashMap<u64, Instant>,
}

/// Which part of the class a student is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seat {
    Stage,
    Audience,
    Lobby,
}

struct Student {
    room: Room,
    seat: Seat,
    log: Arc<FrameLog>,
    milestones: Arc<Mutex<Milestones>>,
}

struct Teacher {
    room: Room,
    sink: Arc<TeacherSink>,
}

/// One class: its teacher and students, once joined.
pub struct ClassRoom {
    teacher: Teacher,
    students: Vec<Student>,
    /// When the teacher asked to admit / invite / chat (by student index, and by message seq).
    admit_calls: HashMap<usize, Instant>,
    invite_calls: HashMap<usize, Instant>,
    chat_calls: Vec<(u64, Instant)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain records; a panic elsewhere leaves them readable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn token(
    args: &LoadTestArgs,
    room: &str,
    identity: &str,
    role: Role,
    shape: &ClassShape,
) -> anyhow::Result<String> {
    let mut claims = Claims::new(&args.api_key, room, identity, role, unix_now(), 3600);
    claims.classroom = Some(RoomSettings {
        mode: RoomMode::Class,
        lobby: true,
        stage_capacity: shape.stage.clamp(1, 64) as u32,
        ..RoomSettings::default()
    });
    claims.sign(&args.api_secret).context("cannot mint a token")
}

async fn publish(room: &Room, args: &LoadTestArgs) -> anyhow::Result<()> {
    let (width, height) = args.resolution;
    room.publish_video(
        SyntheticVideoSource::new(width, height, args.fps)?,
        VideoPublishOptions {
            bitrate_bps: default_bitrate_bps(width, height, args.fps),
            ..VideoPublishOptions::default()
        },
    )
    .await
    .context("cannot publish video")?;
    room.publish_audio(SyntheticAudioSource::new(440.0), "tone")
        .await
        .context("cannot publish audio")?;
    Ok(())
}

/// Follows a student's events: notes admission, stage and chat; accepts stage invitations and
/// publishes once on stage.
fn follow(
    room: Room,
    mut events: UnboundedReceiver<RoomEvent>,
    milestones: Arc<Mutex<Milestones>>,
    args: LoadTestArgs,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let now = Instant::now();
            match event {
                RoomEvent::Admitted => {
                    lock(&milestones).admitted.get_or_insert(now);
                }
                RoomEvent::StageInvitation { .. } => {
                    let room = room.clone();
                    tokio::spawn(async move {
                        if let Err(err) = room.answer_stage_invitation(true).await {
                            eprintln!("accepting a stage invitation failed: {err}");
                        }
                    });
                }
                RoomEvent::ChatReceived(message) => {
                    lock(&milestones).chat.entry(message.seq).or_insert(now);
                }
                RoomEvent::Disconnected { .. } => break,
                _ => {}
            }
            if room.placement() == Placement::Stage && lock(&milestones).on_stage.is_none() {
                lock(&milestones).on_stage = Some(now);
                let room = room.clone();
                let args = args.clone();
                tokio::spawn(async move {
                    if let Err(err) = publish(&room, &args).await {
                        eprintln!("a student on stage could not publish: {err:#}");
                    }
                });
            }
        }
    });
}

/// Joins every room's teacher and students at the join rate. Returns the classes and the
/// joins that failed, with the first error.
async fn join_all(
    args: &LoadTestArgs,
    shape: ClassShape,
) -> (Vec<ClassRoom>, usize, Option<String>) {
    let pace = Duration::from_secs_f64(1.0 / args.join_rate);
    let mut classes = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    let mut fail = |err: anyhow::Error, failed: &mut usize| {
        *failed += 1;
        first_error.get_or_insert_with(|| format!("{err:#}"));
    };
    for number in 1..=args.rooms {
        let name = format!("{}-{number}", args.room_prefix);
        let teacher = async {
            let identity = format!("load-{number}-teacher");
            let token = token(args, &name, &identity, Role::Teacher, &shape)?;
            let (room, _events) = Room::connect(&args.url, &token, RoomOptions::default())
                .await
                .with_context(|| format!("{identity} cannot join {name} at {}", args.url))?;
            let sink = Arc::new(TeacherSink::default());
            room.set_video_sink(Some(Arc::clone(&sink) as Arc<dyn VideoSink>));
            publish(&room, args).await?;
            anyhow::Ok(Teacher { room, sink })
        }
        .await;
        tokio::time::sleep(pace).await;
        let teacher = match teacher {
            Ok(teacher) => teacher,
            Err(err) => {
                // Without its teacher the room's students would wait in the lobby for ever.
                fail(err, &mut failed);
                failed += shape.per_room() - 1;
                continue;
            }
        };
        let mut students = Vec::new();
        let seats = std::iter::repeat_n(Seat::Stage, shape.stage)
            .chain(std::iter::repeat_n(Seat::Audience, shape.audience))
            .chain(std::iter::repeat_n(Seat::Lobby, shape.lobby));
        for (index, seat) in seats.enumerate() {
            let identity = format!("load-{number}-s{index}");
            let joined = async {
                let token = token(args, &name, &identity, Role::Student, &shape)?;
                Room::connect(&args.url, &token, RoomOptions::default())
                    .await
                    .with_context(|| format!("{identity} cannot join {name} at {}", args.url))
            }
            .await;
            tokio::time::sleep(pace).await;
            match joined {
                Ok((room, events)) => {
                    let log = Arc::new(FrameLog::default());
                    room.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
                    let milestones = Arc::new(Mutex::new(Milestones::default()));
                    follow(room.clone(), events, Arc::clone(&milestones), args.clone());
                    students.push(Student {
                        room,
                        seat,
                        log,
                        milestones,
                    });
                }
                Err(err) => fail(err, &mut failed),
            }
        }
        classes.push(ClassRoom {
            teacher,
            students,
            admit_calls: HashMap::new(),
            invite_calls: HashMap::new(),
            chat_calls: Vec::new(),
        });
    }
    (classes, failed, first_error)
}

/// The teacher admits the stage and audience students, invites the stage ones, and chats.
async fn teach(class: &mut ClassRoom) -> anyhow::Result<()> {
    let teacher = class.teacher.room.clone();
    for (index, student) in class.students.iter().enumerate() {
        if student.seat == Seat::Lobby {
            continue;
        }
        let id = student.room.local_participant().id;
        class.admit_calls.insert(index, Instant::now());
        teacher
            .admit(&id)
            .await
            .context("the teacher cannot admit")?;
    }
    wait_for(STEP_TIMEOUT, || {
        class
            .students
            .iter()
            .filter(|s| s.seat != Seat::Lobby)
            .all(|s| lock(&s.milestones).admitted.is_some())
    })
    .await;
    for (index, student) in class.students.iter().enumerate() {
        if student.seat != Seat::Stage {
            continue;
        }
        let id = student.room.local_participant().id;
        class.invite_calls.insert(index, Instant::now());
        teacher
            .invite_to_stage(&id)
            .await
            .context("the teacher cannot invite to the stage")?;
    }
    wait_for(STEP_TIMEOUT, || {
        class
            .students
            .iter()
            .filter(|s| s.seat == Seat::Stage)
            .all(|s| lock(&s.milestones).on_stage.is_some())
    })
    .await;
    for n in 0..CHAT_MESSAGES {
        let at = Instant::now();
        let message = teacher
            .send_chat(ChatDraft {
                text: format!("load-test message {n}"),
                ..ChatDraft::default()
            })
            .await
            .context("the teacher cannot chat")?;
        class.chat_calls.push((message.seq, at));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Joins and runs every class; returns the participants for the media figures (with whether
/// each publishes and receives), the classes, and the failed joins.
pub async fn start(
    args: &LoadTestArgs,
    shape: ClassShape,
) -> anyhow::Result<(
    Vec<(usize, Participant)>,
    Vec<ClassRoom>,
    usize,
    Option<String>,
)> {
    let (mut classes, failed, first_error) = join_all(args, shape).await;
    let mut steps = Vec::new();
    for mut class in classes.drain(..) {
        steps.push(tokio::spawn(async move {
            let outcome = teach(&mut class).await;
            (class, outcome)
        }));
    }
    let mut participants = Vec::new();
    let mut handles = Vec::new();
    for (room_index, step) in steps.into_iter().enumerate() {
        let (class, outcome) = step.await.context("a class task failed")?;
        if let Err(err) = outcome {
            eprintln!("room {}: {err:#}", room_index + 1);
        }
        participants.push((
            room_index,
            Participant {
                room: class.teacher.room.clone(),
                publishes: true,
                receives: true,
                log: Arc::clone(&class.teacher.sink.log),
            },
        ));
        for student in &class.students {
            participants.push((
                room_index,
                Participant {
                    room: student.room.clone(),
                    publishes: student.seat == Seat::Stage,
                    receives: student.seat != Seat::Lobby,
                    log: Arc::clone(&student.log),
                },
            ));
        }
        handles.push(class);
    }
    Ok((participants, handles, failed, first_error))
}

/// The classroom figures of every class, with `shape` per room.
pub fn figures(classes: &[ClassRoom], shape: ClassShape) -> ClassFigures {
    let mut f = ClassFigures {
        stage: shape.stage,
        audience: shape.audience,
        lobby: shape.lobby,
        ..ClassFigures::default()
    };
    let (mut admit, mut stage, mut video, mut chat) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for class in classes {
        let first_frames = lock(&class.teacher.sink.first).clone();
        for (index, student) in class.students.iter().enumerate() {
            let m = lock(&student.milestones);
            if student.seat == Seat::Lobby {
                f.lobby_frames += student.log.len();
                f.lobby_chat += m.chat.len();
                if student.room.placement() == Placement::Lobby && student.room.is_connected() {
                    f.still_in_lobby += 1;
                }
                continue;
            }
            if let Some(called) = class.admit_calls.get(&index) {
                f.admissions += 1;
                if let Some(at) = m.admitted {
                    f.admitted += 1;
                    admit.push(ms(at.saturating_duration_since(*called)));
                }
            }
            if let Some(called) = class.invite_calls.get(&index) {
                f.invitations += 1;
                if let Some(at) = m.on_stage {
                    f.on_stage += 1;
                    stage.push(ms(at.saturating_duration_since(*called)));
                }
                let id = student.room.local_participant().id;
                if let Some(at) = first_frames.get(&id) {
                    video.push(ms(at.saturating_duration_since(*called)));
                }
            }
            for (seq, sent) in &class.chat_calls {
                f.chat_expected += 1;
                if let Some(at) = m.chat.get(seq) {
                    f.chat_delivered += 1;
                    chat.push(ms(at.saturating_duration_since(*sent)));
                }
            }
        }
        f.chat_messages += class.chat_calls.len();
    }
    f.admit_ms = Percentiles::of(&admit);
    f.stage_ms = Percentiles::of(&stage);
    f.stage_video_ms = Percentiles::of(&video);
    f.chat_ms = Percentiles::of(&chat);
    f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the classroom figures for people.
pub fn print(f: &ClassFigures) {
    println!(
        "class: admitted {}/{} (p50 {:.0} ms, p95 {:.0} ms); on stage {}/{} (p50 {:.0} ms, \
         p95 {:.0} ms; first frame at the teacher p50 {:.0} ms, p95 {:.0} ms); chat {}/{} \
         deliveries (p50 {:.0} ms, p95 {:.0} ms); {} still in the lobby, which received {} \
         frames and {} messages",
        f.admitted,
        f.admissions,
        f.admit_ms.p50,
        f.admit_ms.p95,
        f.on_stage,
        f.invitations,
        f.stage_ms.p50,
        f.stage_ms.p95,
        f.stage_video_ms.p50,
        f.stage_video_ms.p95,
        f.chat_delivered,
        f.chat_expected,
        f.chat_ms.p50,
        f.chat_ms.p95,
        f.still_in_lobby,
        f.lobby_frames,
        f.lobby_chat
    );
}
