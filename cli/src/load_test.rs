//! `aula load-test`: many headless participants from one process against a running server,
//! with what each receiver saw summed up at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aula_core::frame_log::{FrameLog, WindowSummary};
use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::{Percentiles, Room, RoomOptions, VideoPublishOptions, VideoSink};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use clap::Args;
use serde::Serialize;

use crate::join::{default_bitrate_bps, parse_resolution};
use crate::load_test_class::{self as class, ClassFigures, ClassShape};

/// Arguments of `aula load-test`.
#[derive(Args, Debug, Clone)]
pub struct LoadTestArgs {
    /// Server URL, e.g. ws://127.0.0.1:7880.
    #[arg(long, env = "AULA_URL")]
    pub(crate) url: String,
    /// API key the participants' tokens are minted with.
    #[arg(long, env = "AULA_API_KEY")]
    pub(crate) api_key: String,
    /// API secret the participants' tokens are signed with.
    #[arg(long, env = "AULA_API_SECRET", hide_env_values = true)]
    pub(crate) api_secret: String,
    /// Rooms to spread the participants over (named `PREFIX-1` ... `PREFIX-N`).
    #[arg(long, default_value_t = 1)]
    pub(crate) rooms: usize,
    /// Prefix of the rooms' names.
    #[arg(long, default_value = "load")]
    pub(crate) room_prefix: String,
    /// Participants in each room.
    #[arg(long, default_value_t = 4)]
    participants_per_room: usize,
    /// Participants in each room who publish synthetic video and audio (teachers); the others
    /// only receive (students).
    #[arg(long, default_value_t = 1)]
    publishers_per_room: usize,
    /// Video resolution WIDTHxHEIGHT of each publisher.
    #[arg(long, default_value = "640x360", value_parser = parse_resolution)]
    pub(crate) resolution: (u32, u32),
    /// Video frame rate.
    #[arg(long, default_value_t = 15)]
    pub(crate) fps: u32,
    /// Participants joining per second, so the server sees a ramp, not a stampede.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) join_rate: f64,
    /// Seconds measured once everyone has joined (and a 2 s settling time).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Run each room as a class: a teacher who publishes, `--stage` students brought on stage
    /// (who then publish), `--audience` students admitted to watch, and `--lobby` students
    /// left waiting (instead of --participants-per-room and --publishers-per-room).
    #[arg(long, conflicts_with_all = ["participants_per_room", "publishers_per_room"])]
    class: bool,
    /// With --class: students on stage in each room.
    #[arg(long, default_value_t = 2, requires = "class")]
    stage: usize,
    /// With --class: students in the audience in each room.
    #[arg(long, default_value_t = 8, requires = "class")]
    audience: usize,
    /// With --class: students left in the lobby in each room.
    #[arg(long, default_value_t = 0, requires = "class")]
    lobby: usize,
}

/// One participant the load test runs.
pub(crate) struct Participant {
    pub(crate) room: Room,
    /// Whether it publishes video (others expect its stream).
    pub(crate) publishes: bool,
    /// Whether it should receive the room's video (not while waiting in a lobby).
    pub(crate) receives: bool,
    pub(crate) log: Arc<FrameLog>,
}

/// What `aula load-test` found.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// Participants asked for.
    participants: usize,
    /// Participants that joined.
    joined: usize,
    /// Joins that failed, with the first error.
    failed: usize,
    first_error: Option<String>,
    /// Connect to the server's join reply, over the participants that joined.
    join_ms: Percentiles,
    /// Video streams each receiver should get (the publishers in its room other than itself),
    /// summed over receivers.
    expected_streams: usize,
    /// Decoded frame rate per expected stream over the measured window: median and lowest.
    decoded_fps_median: f64,
    decoded_fps_min: f64,
    /// Stamp-to-decode latency: the median over receivers of each receiver's percentiles.
    latency_ms: Percentiles,
    /// Freezes, summed over receivers.
    freezes: u64,
    /// Receivers that decoded nothing in the window although they should have.
    starved_receivers: usize,
    /// Seconds measured.
    duration_s: f64,
    /// With --class: what the classroom did.
    #[serde(skip_serializing_if = "Option::is_none")]
    classroom: Option<ClassFigures>,
}

/// Runs the load test and prints (and writes) its summary.
pub fn run(args: LoadTestArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run_async(&args))?;
    print_report(&report);
    if let Some(figures) = &report.classroom {
        class::print(figures);
    }
    if let Some(path) = &args.stats_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.failed > 0 {
        bail!(
            "{} of {} participants could not join: {}",
            report.failed,
            report.participants,
            report.first_error.as_deref().unwrap_or("unknown error")
        );
    }
    if report.starved_receivers > 0 {
        bail!(
            "{} receivers decoded no video in the measured window",
            report.starved_receivers
        );
    }
    if let Some(problems) = report.classroom.as_ref().map(ClassFigures::problems) {
        if !problems.is_empty() {
            bail!("the class went wrong: {}", problems.join("; "));
        }
    }
    Ok(())
}

/// The shape of each class, with --class.
fn shape(args: &LoadTestArgs) -> Option<ClassShape> {
    args.class.then_some(ClassShape {
        stage: args.stage,
        audience: args.audience,
        lobby: args.lobby,
    })
}

/// Participants in each room.
fn per_room(args: &LoadTestArgs) -> usize {
    shape(args).map_or(args.participants_per_room, |s| s.per_room())
}

fn validate(args: &LoadTestArgs) -> anyhow::Result<()> {
    if args.rooms == 0 || args.participants_per_room == 0 {
        bail!("--rooms and --participants-per-room must be at least 1");
    }
    if args.class && args.stage > aula_protocol::classroom::MAX_STAGE_CAPACITY as usize {
        bail!(
            "--stage is at most {} (a room's largest stage)",
            aula_protocol::classroom::MAX_STAGE_CAPACITY
        );
    }
    if args.publishers_per_room > args.participants_per_room {
        bail!("--publishers-per-room cannot exceed --participants-per-room");
    }
    if args.fps == 0 || args.fps > 120 {
        bail!("--fps must be between 1 and 120");
    }
    if !args.join_rate.is_finite() || args.join_rate <= 0.0 {
        bail!("--join-rate must be positive");
    }
    if !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--duration must be positive");
    }
    Ok(())
}

async fn run_async(args: &LoadTestArgs) -> anyhow::Result<LoadReport> {
    let mut classes = Vec::new();
    let (participants, failed, first_error) = match shape(args) {
        Some(shape) => {
            let (participants, ran, failed, first_error) = class::start(args, shape).await?;
            classes = ran;
            (participants, failed, first_error)
        }
        None => join_calls(args).await,
    };
    let total = args.rooms * per_room(args);
    if participants.is_empty() {
        let now = Instant::now();
        return Ok(summarize(
            args,
            &participants,
            failed,
            first_error,
            now,
            now,
        ));
    }
    eprintln!(
        "{} of {total} participants joined; measuring for {:.0} s",
        participants.len(),
        args.duration
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = Instant::now();
    let deadline = from + Duration::from_secs_f64(args.duration);
    while Instant::now() < deadline {
        let step = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        tokio::time::sleep(step).await;
        let window_start = Instant::now().checked_sub(Duration::from_secs(1));
        let decoded: usize = participants
            .iter()
            .map(|(_, p)| {
                window_start.map_or(0, |start| p.log.between(start, Instant::now()).len())
            })
            .sum();
        eprintln!(
            "t={:>4.0}s  {} in rooms, {decoded} frames decoded in the last second",
            from.elapsed().as_secs_f64(),
            participants
                .iter()
                .filter(|(_, p)| p.room.is_connected())
                .count()
        );
    }
    let to = Instant::now();
    let mut report = summarize(args, &participants, failed, first_error, from, to);
    report.classroom = shape(args).map(|shape| class::figures(&classes, shape));
    for (_, participant) in &participants {
        participant.room.disconnect().await;
    }
    Ok(report)
}

/// Joins the participants of plain calls at the join rate.
async fn join_calls(args: &LoadTestArgs) -> (Vec<(usize, Participant)>, usize, Option<String>) {
    let total = args.rooms * args.participants_per_room;
    let pace = Duration::from_secs_f64(1.0 / args.join_rate);
    let mut joins = Vec::with_capacity(total);
    for index in 0..total {
        let room_number = index % args.rooms + 1;
        let seat = index / args.rooms;
        let publishes = seat < args.publishers_per_room;
        let args = args.clone();
        joins.push(tokio::spawn(async move {
            join_one(&args, room_number, seat, publishes).await
        }));
        tokio::time::sleep(pace).await;
    }
    let mut participants: Vec<(usize, Participant)> = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for (index, join) in joins.into_iter().enumerate() {
        match join.await {
            Ok(Ok(participant)) => participants.push((index % args.rooms, participant)),
            Ok(Err(err)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
            Err(err) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("join task failed: {err}"));
            }
        }
    }
    (participants, failed, first_error)
}

async fn join_one(
    args: &LoadTestArgs,
    room_number: usize,
    seat: usize,
    publishes: bool,
) -> anyhow::Result<Participant> {
    let room_name = format!("{}-{room_number}", args.room_prefix);
    let identity = format!("load-{room_number}-{seat}");
    let role = if publishes {
        Role::Teacher
    } else {
        Role::Student
    };
    let token = Claims::new(&args.api_key, &room_name, &identity, role, unix_now(), 3600)
        .sign(&args.api_secret)
        .context("cannot mint a token")?;
    let (room, _events) = Room::connect(&args.url, &token, RoomOptions::default())
        .await
        .with_context(|| format!("{identity} cannot join {room_name} at {}", args.url))?;
    let log = Arc::new(FrameLog::default());
    room.set_video_sink(Some(Arc::clone(&log) as Arc<dyn VideoSink>));
    if publishes {
        let (width, height) = args.resolution;
        room.publish_video(
            SyntheticVideoSource::new(width, height, args.fps)?,
            VideoPublishOptions {
                bitrate_bps: default_bitrate_bps(width, height, args.fps),
                ..VideoPublishOptions::default()
            },
        )
        .await
        .with_context(|| format!("{identity} cannot publish video"))?;
        room.publish_audio(SyntheticAudioSource::new(440.0), "tone")
            .await
            .with_context(|| format!("{identity} cannot publish audio"))?;
    }
    Ok(Participant {
        room,
        publishes,
        receives: true,
        log,
    })
}

fn summarize(
    args: &LoadTestArgs,
    participants: &[(usize, Participant)],
    failed: usize,
    first_error: Option<String>,
    from: Instant,
    to: Instant,
) -> LoadReport {
    let publishers_in = |room: usize| {
        participants
            .iter()
            .filter(|(r, p)| *r == room && p.publishes)
            .count()
    };
    let mut per_stream_fps = Vec::new();
    let mut receivers: Vec<WindowSummary> = Vec::new();
    let mut expected_streams = 0;
    let mut starved_receivers = 0;
    for (room, participant) in participants.iter().filter(|(_, p)| p.receives) {
        let streams = publishers_in(*room) - usize::from(participant.publishes);
        if streams == 0 {
            continue;
        }
        expected_streams += streams;
        let summary = participant.log.summary(from, to, args.fps);
        if summary.frames == 0 {
            starved_receivers += 1;
        }
        per_stream_fps.extend(std::iter::repeat_n(
            summary.decoded_fps / streams as f64,
            streams,
        ));
        receivers.push(summary);
    }
    let median_of = |pick: fn(&Percentiles) -> f64| {
        median(receivers.iter().map(|r| pick(&r.latency_ms)).collect())
    };
    let join_ms: Vec<f64> = participants
        .iter()
        .map(|(_, p)| p.room.stats().join_ms)
        .collect();
    LoadReport {
        participants: args.rooms * per_room(args),
        joined: participants.len(),
        failed,
        first_error,
        join_ms: Percentiles::of(&join_ms),
        expected_streams,
        decoded_fps_median: median(per_stream_fps.clone()),
        decoded_fps_min: per_stream_fps.iter().copied().fold(f64::NAN, f64::min),
        latency_ms: Percentiles {
            p50: median_of(|p| p.p50),
            p95: median_of(|p| p.p95),
            max: median_of(|p| p.max),
        },
        freezes: receivers.iter().map(|r| r.freezes).sum(),
        starved_receivers,
        duration_s: to.duration_since(from).as_secs_f64(),
        classroom: None,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print_report(report: &LoadReport) {
    println!(
        "joined {}/{} (join p50 {:.0} ms, p95 {:.0} ms); {} streams: decoded fps median {:.1}, \
         lowest {:.1}; latency p50 {:.0} ms, p95 {:.0} ms; {} freezes; {} receivers starved",
        report.joined,
        report.participants,
        report.join_ms.p50,
        report.join_ms.p95,
        report.expected_streams,
        report.decoded_fps_median,
        if report.decoded_fps_min.is_nan() {
            0.0
        } else {
            report.decoded_fps_min
        },
        report.latency_ms.p50,
        report.latency_ms.p95,
        report.freezes,
        report.starved_receivers
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: LoadTestArgs,
    }

    fn parse(extra: &[&str]) -> LoadTestArgs {
        let mut argv = vec![
            "load-test",
            "--url",
            "ws://127.0.0.1:1",
            "--api-key",
            "k",
            "--api-secret",
            "s",
        ];
        argv.extend_from_slice(extra);
        Harness::parse_from(argv).args
    }

    #[test]
    fn impossible_shapes_are_refused_before_joining() {
        assert!(validate(&parse(&[])).is_ok());
        assert!(validate(&parse(&["--rooms", "0"])).is_err());
        assert!(validate(&parse(&[
            "--participants-per-room",
            "2",
            "--publishers-per-room",
            "3"
        ]))
        .is_err());
        assert!(validate(&parse(&["--join-rate", "0"])).is_err());
        assert!(validate(&parse(&["--fps", "0"])).is_err());
    }
}
