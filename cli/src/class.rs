//! `aula class`: run a class from a script through the server API, as a teacher's backend
//! would: settings, the lobby, the stage, moderation, chat, attendance.
//!
//! Participants are named by identity (the API addresses them so). Output is for people by
//! default and JSON with `--json`. A refusal prints `error: <code>: <message>` on stderr and
//! exits with [`EXIT_REFUSED`]; a server that cannot be reached exits with
//! [`EXIT_UNREACHABLE`].

use anyhow::Context;
use aula_protocol::api::{Attendance, ChatPage, RoomDetail, RoomSummary};
use aula_protocol::classroom::{ChatKind, ChatPolicy};
use aula_protocol::{
    ChatMessage, MediaKind, ParticipantInfo, PermissionsPatch, RoomMode, RoomSettings,
    RoomSettingsPatch, TrackSource,
};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api_client::{ApiClient, ApiFailure};

/// Exit code of a request the server refused.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code when the server could not be reached or did not answer as the API does.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Most messages one history request asks for (the server's own bound).
const HISTORY_PAGE: usize = 10_000;

/// Arguments of `aula class`.
#[derive(Args, Debug)]
pub struct ClassArgs {
    /// The server: its http(s):// base URL, or the ws(s):// URL clients join with.
    #[arg(long, env = "AULA_URL")]
    url: String,
    /// API key (names the secret the server tokens are signed with).
    #[arg(long, env = "AULA_API_KEY")]
    api_key: String,
    /// API secret.
    #[arg(long, env = "AULA_API_SECRET", hide_env_values = true)]
    api_secret: String,
    /// The room (every command but `rooms` needs it).
    #[arg(long, env = "AULA_ROOM")]
    room: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ClassCommand,
}

/// What `aula class` does.
#[derive(Subcommand, Debug)]
enum ClassCommand {
    /// Print the room's settings, or change those given (creating the room with them when it
    /// does not exist yet).
    Settings(SettingsArgs),
    /// The room in detail: class number, lock, stage, hands, participants.
    Show,
    /// Every room open now or created through the API.
    Rooms,
    /// Everyone in the room now (the lobby included), with placement, hand and tracks.
    Participants,
    /// Let a participant in from the lobby.
    Admit {
        /// Its identity.
        identity: String,
    },
    /// Let everyone in the lobby in.
    AdmitAll,
    /// Refuse a participant waiting in the lobby.
    Deny {
        /// Its identity.
        identity: String,
        /// Shown to the participant.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Invite a student to the stage (one with a raised hand goes up at once).
    Stage {
        /// Its identity.
        identity: String,
    },
    /// Move a student from the stage to the audience.
    Unstage {
        /// Its identity.
        identity: String,
    },
    /// Move every student on stage to the audience.
    ClearStage,
    /// Lower (dismiss) a participant's raised hand.
    LowerHand {
        /// Its identity.
        identity: String,
    },
    /// Mute a participant's microphone (audio) or camera (video).
    Mute {
        /// Its identity.
        identity: String,
        /// audio or video.
        #[arg(long, default_value = "audio", value_parser = parse_kind)]
        kind: MediaKind,
    },
    /// Mute every student's microphone or camera.
    MuteAll {
        /// audio or video.
        #[arg(long, default_value = "audio", value_parser = parse_kind)]
        kind: MediaKind,
        /// Whether students may unmute themselves afterwards (on|off; unchanged if absent).
        #[arg(long, value_parser = parse_switch)]
        allow_unmute: Option<bool>,
    },
    /// End a participant's screen share.
    StopScreenShare {
        /// Its identity.
        identity: String,
    },
    /// Remove a participant from the class (it cannot rejoin this class).
    Remove {
        /// Its identity.
        identity: String,
        /// Shown to the participant.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Make a participant co-teacher (or, with --off, take it back).
    CoTeacher {
        /// Its identity.
        identity: String,
        /// Take co-teaching back.
        #[arg(long)]
        off: bool,
    },
    /// Change what one participant may do (unset flags follow its token and the room).
    Permissions(PermissionsArgs),
    /// Feature a participant for everyone (without an identity: nobody).
    Spotlight {
        /// Its identity.
        identity: Option<String>,
    },
    /// Lock the room: no new participants (teachers and this class's own excepted).
    Lock,
    /// Unlock the room.
    Unlock,
    /// End the class for everyone; the next class starts clean.
    End,
    /// Send a system message to the class (or, with --to, to one participant).
    Say {
        /// The text.
        text: String,
        /// The recipient's identity, for a private message.
        #[arg(long)]
        to: Option<String>,
    },
    /// The chat history of the class, oldest first (every message, or the newest --limit).
    History {
        /// Only the newest this many messages.
        #[arg(long)]
        limit: Option<usize>,
        /// An earlier class's history (default: the current class).
        #[arg(long)]
        class: Option<u64>,
    },
    /// Who attended the class: visits, time in the room, in the lobby and on stage.
    Attendance {
        /// An earlier class (default: the current class).
        #[arg(long)]
        class: Option<u64>,
    },
}

/// `aula class settings`.
#[derive(Args, Debug, Default)]
struct SettingsArgs {
    /// call or class.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<RoomMode>,
    /// Students wait in a lobby until admitted (on|off).
    #[arg(long, value_parser = parse_switch)]
    lobby: Option<bool>,
    /// Most students on stage at once (1-64).
    #[arg(long)]
    stage_capacity: Option<u32>,
    /// A raised hand goes on stage at once while there is room (on|off).
    #[arg(long, value_parser = parse_switch)]
    auto_stage: Option<bool>,
    /// Who may chat: all, teachers or off.
    #[arg(long, value_parser = parse_chat)]
    chat: Option<ChatPolicy>,
    /// Students may message each other privately (on|off).
    #[arg(long, value_parser = parse_switch)]
    student_private_chat: Option<bool>,
    /// Students may unmute what a teacher muted (on|off).
    #[arg(long, value_parser = parse_switch)]
    students_may_unmute: Option<bool>,
}

impl SettingsArgs {
    fn patch(&self) -> RoomSettingsPatch {
        RoomSettingsPatch {
            mode: self.mode,
            lobby: self.lobby,
            stage_capacity: self.stage_capacity,
            auto_stage: self.auto_stage,
            chat: self.chat,
            student_private_chat: self.student_private_chat,
            students_may_unmute: self.students_may_unmute,
        }
    }
}

/// `aula class permissions`.
#[derive(Args, Debug)]
struct PermissionsArgs {
    /// Its identity.
    identity: String,
    /// What it may publish while on stage: a comma-separated list of camera, microphone,
    /// screen_share, or none.
    #[arg(long, value_parser = parse_sources)]
    publish: Option<Vec<TrackSource>>,
    /// Whether it may chat (on|off).
    #[arg(long, value_parser = parse_switch)]
    chat: Option<bool>,
    /// Whether it may write on the whiteboard (on|off).
    #[arg(long, value_parser = parse_switch)]
    whiteboard: Option<bool>,
    /// Whether it may unmute what a teacher muted (on|off).
    #[arg(long, value_parser = parse_switch)]
    unmute: Option<bool>,
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{text:?}: say on or off")),
    }
}

/// A wire enum value by its JSON name.
fn wire<T: serde::de::DeserializeOwned>(text: &str, choices: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(text.trim().to_ascii_lowercase()))
        .map_err(|_| format!("{text:?}: one of {choices}"))
}

fn parse_mode(text: &str) -> Result<RoomMode, String> {
    wire(text, "call, class")
}

fn parse_chat(text: &str) -> Result<ChatPolicy, String> {
    wire(text, "all, teachers, off")
}

fn parse_kind(text: &str) -> Result<MediaKind, String> {
    wire(text, "audio, video")
}

fn parse_sources(text: &str) -> Result<Vec<TrackSource>, String> {
    let mut sources = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            "mic" => sources.push(TrackSource::Microphone),
            "screen" => sources.push(TrackSource::ScreenShare),
            other => sources.push(wire(other, "camera, microphone, screen_share, none")?),
        }
    }
    Ok(sources)
}

/// Runs one `aula class` command.
pub fn run(args: ClassArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ClassArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(&args.url, &args.api_key, &args.api_secret)?;
    let json = args.json;
    if let ClassCommand::Rooms = args.command {
        let rooms = api.call(Method::GET, None, &["rooms"], &[], None).await?;
        return print_rooms(&rooms, json);
    }
    let room = args
        .room
        .as_deref()
        .filter(|r| !r.is_empty())
        .context("name the room: --room ROOM (or AULA_ROOM)")?;
    let class = Class { api: &api, room };
    match args.command {
        ClassCommand::Rooms => unreachable!("handled above"),
        ClassCommand::Settings(settings) => class.settings(&settings, json).await,
        ClassCommand::Show => {
            let detail = class.get(&[], &[]).await?;
            print_detail(&detail, json)
        }
        ClassCommand::Participants => {
            let list = class.get(&["participants"], &[]).await?;
            print_participants(&list, json)
        }
        ClassCommand::Admit { identity } => {
            class.act(&identity, "admit", None, json, "admitted").await
        }
        ClassCommand::AdmitAll => {
            class
                .post(&["admit-all"], None, json, "admitted everyone waiting")
                .await
        }
        ClassCommand::Deny { identity, reason } => {
            let body = json!({ "reason": reason });
            class
                .act(&identity, "deny", Some(body), json, "denied")
                .await
        }
        ClassCommand::Stage { identity } => {
            class
                .act(&identity, "stage", None, json, "invited to the stage")
                .await
        }
        ClassCommand::Unstage { identity } => {
            class
                .act(&identity, "unstage", None, json, "moved to the audience")
                .await
        }
        ClassCommand::ClearStage => {
            class
                .post(&["clear-stage"], None, json, "cleared the stage")
                .await
        }
        ClassCommand::LowerHand { identity } => {
            class
                .act(&identity, "lower-hand", None, json, "lowered the hand of")
                .await
        }
        ClassCommand::Mute { identity, kind } => {
            let done = format!("muted the {} of", kind_name(kind));
            class
                .act(
                    &identity,
                    "mute",
                    Some(json!({ "kind": kind })),
                    json,
                    &done,
                )
                .await
        }
        ClassCommand::MuteAll { kind, allow_unmute } => {
            let mut body = json!({ "kind": kind });
            if let Some(allow) = allow_unmute {
                body["allow_unmute"] = json!(allow);
            }
            let done = format!("muted every student's {}", kind_name(kind));
            class.post(&["mute-all"], Some(body), json, &done).await
        }
        ClassCommand::StopScreenShare { identity } => {
            class
                .act(
                    &identity,
                    "stop-screen-share",
                    None,
                    json,
                    "stopped the screen share of",
                )
                .await
        }
        ClassCommand::Remove { identity, reason } => {
            let body = json!({ "reason": reason });
            class
                .act(&identity, "remove", Some(body), json, "removed")
                .await
        }
        ClassCommand::CoTeacher { identity, off } => {
            let body = json!({ "co_teacher": !off });
            let done = if off {
                "took co-teaching back from"
            } else {
                "made co-teacher:"
            };
            class
                .act(&identity, "co-teacher", Some(body), json, done)
                .await
        }
        ClassCommand::Permissions(p) => class.permissions(&p, json).await,
        ClassCommand::Spotlight { identity } => {
            let done = match &identity {
                Some(who) => format!("spotlight on {who}"),
                None => "spotlight off".to_owned(),
            };
            class
                .post(
                    &["spotlight"],
                    Some(json!({ "identity": identity })),
                    json,
                    &done,
                )
                .await
        }
        ClassCommand::Lock => {
            class
                .post(&["lock"], Some(json!({ "locked": true })), json, "locked")
                .await
        }
        ClassCommand::Unlock => {
            class
                .post(
                    &["lock"],
                    Some(json!({ "locked": false })),
                    json,
                    "unlocked",
                )
                .await
        }
        ClassCommand::End => class.post(&["end"], None, json, "class ended").await,
        ClassCommand::Say { text, to } => {
            let mut body = json!({ "text": text });
            if let Some(to) = to {
                body["to"] = json!(to);
            }
            let stored = class.send(Method::POST, &["chat"], Some(body)).await?;
            if json {
                print_json(&stored)
            } else {
                println!("sent message #{}", stored["seq"]);
                Ok(())
            }
        }
        ClassCommand::History {
            limit,
            class: number,
        } => {
            let messages = class.history(limit, number).await?;
            if json {
                print_json(&serde_json::to_value(&messages)?)
            } else {
                for message in &messages {
                    println!("{}", chat_line(message));
                }
                Ok(())
            }
        }
        ClassCommand::Attendance { class: number } => {
            let query: Vec<(&str, String)> = number
                .map(|n| ("class", n.to_string()))
                .into_iter()
                .collect();
            let attendance = class.get(&["attendance"], &query).await?;
            print_attendance(&attendance, json)
        }
    }
}

/// One room's API calls.
struct Class<'a> {
    api: &'a ApiClient,
    room: &'a str,
}

impl Class<'_> {
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        self.send_query(method, path, &[], body).await
    }

    async fn send_query(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let mut segments = vec!["rooms", self.room];
        segments.extend_from_slice(path);
        self.api
            .call(method, Some(self.room), &segments, query, body)
            .await
    }

    async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Value, ApiFailure> {
        self.send_query(Method::GET, path, query, None).await
    }

    /// A room-wide action; prints `done` (or the server's answer as JSON).
    async fn post(
        &self,
        path: &[&str],
        body: Option<Value>,
        json: bool,
        done: &str,
    ) -> anyhow::Result<()> {
        let answer = self.send(Method::POST, path, body).await?;
        if json {
            print_json(&answer)
        } else {
            println!("{}: {done}", self.room);
            Ok(())
        }
    }

    /// An action on one participant; prints `done identity`.
    async fn act(
        &self,
        identity: &str,
        action: &str,
        body: Option<Value>,
        json: bool,
        done: &str,
    ) -> anyhow::Result<()> {
        let answer = self
            .send(Method::POST, &["participants", identity, action], body)
            .await?;
        if json {
            print_json(&answer)
        } else {
            println!("{}: {done} {identity}", self.room);
            Ok(())
        }
    }

    async fn settings(&self, args: &SettingsArgs, json: bool) -> anyhow::Result<()> {
        let patch = args.patch();
        let detail = if patch == RoomSettingsPatch::default() {
            self.get(&[], &[]).await?
        } else {
            let body = serde_json::to_value(&patch)?;
            match self.send(Method::PATCH, &["settings"], Some(body)).await {
                Err(ApiFailure::Refused { code, .. }) if code == "unknown_room" => {
                    let settings = RoomSettings::default().patched(&patch);
                    let created = self
                        .api
                        .call(
                            Method::POST,
                            Some(self.room),
                            &["rooms"],
                            &[],
                            Some(json!({ "name": self.room, "settings": settings })),
                        )
                        .await?;
                    eprintln!("created room {}", self.room);
                    created
                }
                other => other?,
            }
        };
        let detail: RoomDetail =
            serde_json::from_value(detail).context("the server's answer is not a room's detail")?;
        if json {
            return print_json(&serde_json::to_value(&detail.summary.settings)?);
        }
        print!("{}", settings_text(&detail.summary.settings));
        Ok(())
    }

    async fn permissions(&self, args: &PermissionsArgs, json: bool) -> anyhow::Result<()> {
        let patch = PermissionsPatch {
            publish: args.publish.clone(),
            chat: args.chat,
            whiteboard_write: args.whiteboard,
            unmute: args.unmute,
        };
        if patch == PermissionsPatch::default() {
            anyhow::bail!("say what changes: --publish, --chat, --whiteboard or --unmute");
        }
        let answer = self
            .send(
                Method::PATCH,
                &["participants", &args.identity, "permissions"],
                Some(serde_json::to_value(&patch)?),
            )
            .await?;
        if json {
            print_json(&answer)
        } else {
            println!(
                "{}: changed the permissions of {}",
                self.room, args.identity
            );
            Ok(())
        }
    }

    /// The newest `limit` messages (all without a limit), oldest first, paging back.
    async fn history(
        &self,
        limit: Option<usize>,
        class: Option<u64>,
    ) -> anyhow::Result<Vec<ChatMessage>> {
        let mut wanted = limit.unwrap_or(usize::MAX);
        let mut pages: Vec<Vec<ChatMessage>> = Vec::new();
        let mut before: Option<u64> = None;
        while wanted > 0 {
            let mut query = vec![("limit", wanted.min(HISTORY_PAGE).to_string())];
            if let Some(before) = before {
                query.push(("before", before.to_string()));
            }
            if let Some(class) = class {
                query.push(("class", class.to_string()));
            }
            let page: ChatPage = serde_json::from_value(self.get(&["chat"], &query).await?)
                .context("the server's answer is not a chat page")?;
            wanted = wanted.saturating_sub(page.messages.len());
            let oldest = page.messages.first().map(|m| m.seq);
            let more = page.more;
            pages.push(page.messages);
            match oldest {
                Some(seq) if more => before = Some(seq),
                _ => break,
            }
        }
        Ok(pages.into_iter().rev().flatten().collect())
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Video => "camera",
        _ => "microphone",
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

/// Wire name of an enum value (`class`, `teachers`, ...).
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => "?".into(),
    }
}

fn settings_text(s: &RoomSettings) -> String {
    format!(
        "mode: {}\nlobby: {}\nstage_capacity: {}\nauto_stage: {}\nchat: {}\n\
         student_private_chat: {}\nstudents_may_unmute: {}\n",
        name_of(&s.mode),
        on_off(s.lobby),
        s.stage_capacity,
        on_off(s.auto_stage),
        name_of(&s.chat),
        on_off(s.student_private_chat),
        on_off(s.students_may_unmute),
    )
}

fn print_rooms(rooms: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(rooms);
    }
    let rooms: Vec<RoomSummary> =
        serde_json::from_value(rooms.clone()).context("the server's answer is not a room list")?;
    println!(
        "{:<24} {:>5} {:>12} {:<5} {:<5} {:<6}",
        "ROOM", "CLASS", "PARTICIPANTS", "MODE", "LOBBY", "LOCKED"
    );
    for room in rooms {
        println!(
            "{:<24} {:>5} {:>12} {:<5} {:<5} {:<6}",
            room.name,
            room.class,
            room.participants,
            name_of(&room.settings.mode),
            on_off(room.settings.lobby),
            if room.locked { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn print_detail(detail: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(detail);
    }
    let detail: RoomDetail = serde_json::from_value(detail.clone())
        .context("the server's answer is not a room's detail")?;
    let s = &detail.summary;
    println!(
        "room {} (class {}){}{}",
        s.name,
        s.class,
        if s.locked { ", locked" } else { "" },
        if s.sid.is_some() { ", open" } else { ", empty" }
    );
    print!("{}", settings_text(&s.settings));
    if let Some(c) = &detail.classroom {
        let identity_of = |id: &aula_protocol::ParticipantId| {
            detail
                .participant_list
                .iter()
                .find(|p| &p.id == id)
                .map_or_else(|| id.to_string(), |p| p.identity.clone())
        };
        println!(
            "teacher present: {}\nstage: {}/{}\nhands: {}",
            if c.teacher_present { "yes" } else { "no" },
            c.stage_count,
            c.settings.stage_capacity,
            c.hands
                .iter()
                .map(identity_of)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(spotlight) = &c.spotlight {
            println!("spotlight: {}", identity_of(spotlight));
        }
    }
    println!("participants: {}", detail.participant_list.len());
    print_participant_table(&detail.participant_list);
    Ok(())
}

fn print_participants(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(list);
    }
    let list: Vec<ParticipantInfo> = serde_json::from_value(list.clone())
        .context("the server's answer is not a participant list")?;
    print_participant_table(&list);
    Ok(())
}

fn print_participant_table(list: &[ParticipantInfo]) {
    if list.is_empty() {
        return;
    }
    println!(
        "{:<20} {:<20} {:<8} {:<9} {:<5} TRACKS",
        "IDENTITY", "NAME", "ROLE", "PLACE", "HAND"
    );
    for p in list {
        let tracks: Vec<String> = p
            .tracks
            .iter()
            .map(|t| {
                let source = name_of(&t.source);
                if t.muted {
                    format!("{source} (muted)")
                } else {
                    source
                }
            })
            .collect();
        let role = if p.co_teacher {
            format!("{}+co", p.role)
        } else {
            p.role.to_string()
        };
        println!(
            "{:<20} {:<20} {:<8} {:<9} {:<5} {}",
            p.identity,
            p.name,
            role,
            p.placement,
            if p.hand_raised { "up" } else { "" },
            tracks.join(", ")
        );
    }
}

fn print_attendance(attendance: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(attendance);
    }
    let attendance: Attendance = serde_json::from_value(attendance.clone())
        .context("the server's answer is not an attendance record")?;
    println!("room {} class {}", attendance.room, attendance.class);
    println!(
        "{:<20} {:<8} {:>6} {:>10} {:>9} {:>9} {:>6}",
        "IDENTITY", "ROLE", "VISITS", "PRESENT", "LOBBY", "STAGE", "TURNS"
    );
    for r in &attendance.participants {
        println!(
            "{:<20} {:<8} {:>6} {:>10} {:>9} {:>9} {:>6}",
            r.identity,
            r.role.to_string(),
            r.visits.len(),
            duration_text(r.present_ms),
            duration_text(r.lobby_ms),
            duration_text(r.stage_ms),
            r.stage_turns
        );
    }
    Ok(())
}

/// `1h02m03s`, `2m05s` or `4.2s`.
fn duration_text(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

/// `#12 14:03:07 t1: text` (UTC), marking private, announcement, system and deleted ones.
fn chat_line(m: &ChatMessage) -> String {
    let secs = m.time / 1000;
    let clock = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    let from = match (&m.from, m.kind) {
        (_, ChatKind::System) | (None, _) => "[system]".to_owned(),
        (Some(from), ChatKind::Announcement) => format!("{from} [announcement]"),
        (Some(from), _) => from.clone(),
    };
    let to =
        m.to.as_ref()
            .map(|to| format!(" (to {to})"))
            .unwrap_or_default();
    let text = if m.deleted { "(deleted)" } else { &m.text };
    format!("#{} {clock} {from}{to}: {text}", m.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_and_wire_names_parse() {
        assert_eq!(parse_switch("on"), Ok(true));
        assert_eq!(parse_switch("OFF"), Ok(false));
        assert!(parse_switch("maybe").is_err());
        assert_eq!(parse_mode("class"), Ok(RoomMode::Class));
        assert!(parse_mode("lecture").is_err());
        assert_eq!(parse_chat("teachers"), Ok(ChatPolicy::Teachers));
        assert_eq!(parse_kind("video"), Ok(MediaKind::Video));
        assert_eq!(
            parse_sources("camera,mic,screen"),
            Ok(vec![
                TrackSource::Camera,
                TrackSource::Microphone,
                TrackSource::ScreenShare
            ])
        );
        assert_eq!(parse_sources("none"), Ok(vec![]));
        assert!(parse_sources("smell").is_err());
    }

    #[test]
    fn settings_flags_make_a_patch_of_what_they_name() {
        let args = SettingsArgs {
            lobby: Some(true),
            stage_capacity: Some(4),
            ..SettingsArgs::default()
        };
        assert_eq!(
            serde_json::to_value(args.patch()).unwrap(),
            json!({"lobby": true, "stage_capacity": 4})
        );
        assert_eq!(
            SettingsArgs::default().patch(),
            RoomSettingsPatch::default()
        );
    }

    #[test]
    fn chat_lines_say_who_when_and_what() {
        let message = ChatMessage {
            seq: 7,
            time: 3_723_000,
            from: Some("t1".into()),
            from_name: "T".into(),
            to: Some("s1".into()),
            kind: ChatKind::Message,
            text: "see me".into(),
            deleted: false,
        };
        assert_eq!(chat_line(&message), "#7 01:02:03 t1 (to s1): see me");
        let system = ChatMessage {
            from: None,
            to: None,
            kind: ChatKind::System,
            deleted: true,
            ..message
        };
        assert_eq!(chat_line(&system), "#7 01:02:03 [system]: (deleted)");
        assert_eq!(duration_text(4_200), "4.2s");
        assert_eq!(duration_text(125_000), "2m05s");
        assert_eq!(duration_text(3_723_000), "1h02m03s");
    }
}
