//! Screen share end to end on a private Xvfb: a known picture is drawn on the virtual display,
//! the teacher shares the screen, and the student's decoded frames must show that picture (its
//! colours, and thin stripes that blur if text handling is wrong), follow it when it changes,
//! and include the cursor. Sharing stops and starts again while in the room, this time one
//! window, and closing that window is reported as a lost device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::devices::{self, DeviceEvent, DeviceKind, ScreenOptions, ScreenSource};
use aula_core::media::{FrameStamp, VideoFrame};
use aula_core::{RoomEvent, VideoPublishOptions, VideoSink};
use aula_protocol::{MediaKind, ParticipantId, Role, TrackSid, TrackSource};
use aula_server::{Server, ServerConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

use support::xvfb::{Painter, Xvfb};

const WIDTH: u16 = 640;
const HEIGHT: u16 = 480;
/// Blocks of the test picture: four columns by three rows of 160x160.
const BLOCK: u16 = 160;

/// Keeps the newest decoded frame of every track.
#[derive(Default)]
struct LatestFrames(Mutex<HashMap<TrackSid, VideoFrame>>);

impl VideoSink for LatestFrames {
    fn on_video_frame(
        &self,
        _: &ParticipantId,
        track: &TrackSid,
        frame: &VideoFrame,
        _: Option<FrameStamp>,
    ) {
        self.0.lock().unwrap().insert(track.clone(), frame.clone());
    }
}

impl LatestFrames {
    fn of(&self, track: &TrackSid) -> Option<VideoFrame> {
        self.0.lock().unwrap().get(track).cloned()
    }
}

/// BT.601 video range, as the capture converts.
fn yuv(rgb: u32) -> (f64, f64, f64) {
    let (r, g, b) = (
        f64::from((rgb >> 16) & 0xFF),
        f64::from((rgb >> 8) & 0xFF),
        f64::from(rgb & 0xFF),
    );
    (
        16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0,
        128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
        128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
    )
}

/// A picture of twelve colour blocks; `shift` rotates the colours, block 5 holds 1-pixel
/// black and white stripes (the "text").
fn colours(shift: usize) -> Vec<u32> {
    let palette = [
        0xE6194B, 0x3CB44B, 0xFFE119, 0x4363D8, 0xF58231, 0x911EB4, 0x46F0F0, 0xF032E6, 0xBCF60C,
        0xFABEBE, 0x008080, 0xE6BEFF,
    ];
    (0..12).map(|i| palette[(i + shift) % 12]).collect()
}

const STRIPES: usize = 5;

fn draw(painter: &Painter, shift: usize) {
    for (i, colour) in colours(shift).into_iter().enumerate() {
        let (x, y) = ((i % 4) as u16 * BLOCK, (i / 4) as u16 * BLOCK);
        painter.fill(x as i16, y as i16, BLOCK, BLOCK, colour);
        if i == STRIPES {
            painter.fill(x as i16, y as i16, BLOCK, BLOCK, 0x000000);
            for column in (0..BLOCK).step_by(2) {
                painter.fill((x + column) as i16, y as i16, 1, BLOCK, 0xFFFFFF);
            }
        }
    }
    painter.sync();
}

/// How far `frame` is from the picture drawn with `shift`: the worst colour error at the
/// middle of the flat blocks, and the luma contrast between neighbouring stripes.
fn compare(frame: &VideoFrame, shift: usize) -> (f64, f64) {
    let w = frame.width as usize;
    let mut worst: f64 = 0.0;
    for (i, colour) in colours(shift).into_iter().enumerate() {
        if i == STRIPES {
            continue;
        }
        let (bx, by) = ((i % 4) * BLOCK as usize, (i / 4) * BLOCK as usize);
        let (want_y, want_u, want_v) = yuv(colour);
        // An 8x8 patch in the middle of the block (away from the cursor, top-left).
        for dy in 0..8 {
            for dx in 0..8 {
                let (x, y) = (bx + 76 + dx, by + 76 + dy);
                let got_y = f64::from(frame.y[y * w + x]);
                let got_u = f64::from(frame.u[(y / 2) * (w / 2) + x / 2]);
                let got_v = f64::from(frame.v[(y / 2) * (w / 2) + x / 2]);
                worst = worst
                    .max((got_y - want_y).abs())
                    .max((got_u - want_u).abs())
                    .max((got_v - want_v).abs());
            }
        }
    }
    let (sx, sy) = (
        (STRIPES % 4) * BLOCK as usize,
        (STRIPES / 4) * BLOCK as usize,
    );
    let mut contrast = 0.0;
    let mut pairs = 0.0;
    for y in sy + 40..sy + 120 {
        for x in (sx + 40..sx + 120).step_by(2) {
            let white = f64::from(frame.y[y * w + x]);
            let black = f64::from(frame.y[y * w + x + 1]);
            contrast += white - black;
            pairs += 1.0;
        }
    }
    (worst, contrast / pairs)
}

async fn wait_for<T>(what: &str, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn next_event(
    events: &mut UnboundedReceiver<RoomEvent>,
    mut wanted: impl FnMut(&RoomEvent) -> bool,
) -> RoomEvent {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("events open");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_arrives_as_drawn_and_sharing_restarts_with_one_window() {
    let _suite = support::shared().await;
    support::init_test_log();
    let xvfb = Xvfb::start(u32::from(WIDTH), u32::from(HEIGHT));
    let painter = Painter::open(xvfb.display(), "aula test slide", WIDTH, HEIGHT);
    draw(&painter, 0);

    // The display lists one screen of its size and the window.
    let screens = devices::screens_of(xvfb.display()).expect("screens listed");
    assert_eq!(screens.len(), 1, "{screens:?}");
    assert_eq!((screens[0].width, screens[0].height), (640, 480));
    assert!(screens[0].primary);
    let windows = devices::windows_of(xvfb.display()).expect("windows listed");
    let window = windows
        .iter()
        .find(|w| w.title == "aula test slide")
        .unwrap_or_else(|| panic!("the test window is listed: {windows:?}"))
        .clone();

    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (teacher, _teacher_events) = support::join(&server, "screen", "t1", Role::Teacher).await;
    let (student, mut student_events) = support::join(&server, "screen", "s1", Role::Student).await;
    let frames = Arc::new(LatestFrames::default());
    student.set_video_sink(Some(Arc::clone(&frames) as Arc<dyn VideoSink>));

    let options = ScreenOptions {
        fps: 10,
        cursor: true,
        display: Some(xvfb.display().to_owned()),
    };
    let screen = ScreenSource::open(None, options.clone()).expect("the screen opens");
    assert_eq!(screen.kind(), DeviceKind::Screen);
    let shared = teacher
        .publish_video(screen, VideoPublishOptions::screen_share(1_500_000))
        .await
        .expect("the screen is shared");
    assert_eq!(shared.source, TrackSource::ScreenShare);

    // The student decodes the picture that is on the screen.
    let first = wait_for("the drawn picture", Duration::from_secs(30), || {
        let frame = frames.of(&shared.sid)?;
        let (worst, contrast) = compare(&frame, 0);
        (worst < 12.0 && contrast > 120.0).then_some(frame)
    })
    .await;
    assert_eq!((first.width, first.height), (640, 480), "full resolution");
    let received = student
        .stats()
        .received
        .into_iter()
        .find(|r| r.track_sid == shared.sid)
        .expect("the screen track is received");
    assert_eq!(received.kind, MediaKind::Video);
    assert_eq!(received.source, TrackSource::ScreenShare);

    // It follows the screen: a new picture arrives, and the cursor is drawn where it points.
    draw(&painter, 3);
    painter.point_at(350, 350);
    wait_for("the changed picture", Duration::from_secs(20), || {
        let frame = frames.of(&shared.sid)?;
        let (worst, contrast) = compare(&frame, 3);
        (worst < 12.0 && contrast > 120.0).then_some(())
    })
    .await;
    wait_for("the cursor", Duration::from_secs(20), || {
        let frame = frames.of(&shared.sid)?;
        // Block 10 is flat around (350, 350) (clear of the patch `compare` reads at its
        // middle); the cursor makes the luma there spread out.
        let patch: Vec<u8> = (330..370)
            .flat_map(|y| (330..370).map(move |x| (x, y)))
            .map(|(x, y)| frame.y[y * 640 + x])
            .collect();
        let (lo, hi) = (patch.iter().min()?, patch.iter().max()?);
        (hi - lo > 80).then_some(())
    })
    .await;

    // Stop sharing: the student sees the track end.
    teacher.unpublish(&shared.sid).await.expect("unpublished");
    next_event(
        &mut student_events,
        |e| matches!(e, RoomEvent::TrackUnpublished { track_sid, .. } if *track_sid == shared.sid),
    )
    .await;

    // Share again, one window this time, without the cursor.
    let window_source = ScreenSource::open(
        Some(&window.id),
        ScreenOptions {
            cursor: false,
            ..options
        },
    )
    .expect("the window opens");
    assert_eq!(window_source.kind(), DeviceKind::Window);
    let mut window_events = window_source.monitor().events();
    let again = teacher
        .publish_video(window_source, VideoPublishOptions::screen_share(1_500_000))
        .await
        .expect("the window is shared");
    draw(&painter, 7);
    wait_for("the window's picture", Duration::from_secs(30), || {
        let frame = frames.of(&again.sid)?;
        let (worst, contrast) = compare(&frame, 7);
        (worst < 12.0 && contrast > 120.0).then_some(())
    })
    .await;

    // Closing the window is reported as a lost device, and black frames follow.
    painter.close();
    let lost = tokio::time::timeout(Duration::from_secs(10), window_events.recv())
        .await
        .expect("the loss is reported")
        .expect("an event");
    assert!(
        matches!(
            &lost,
            DeviceEvent::Lost {
                kind: DeviceKind::Window,
                ..
            }
        ),
        "{lost:?}"
    );
    wait_for("black frames", Duration::from_secs(20), || {
        let frame = frames.of(&again.sid)?;
        frame.y.iter().all(|&y| y.abs_diff(16) <= 4).then_some(())
    })
    .await;

    teacher.disconnect().await;
    student.disconnect().await;
    server.shutdown().await;
    drop(xvfb);
}

#[test]
fn a_display_that_is_not_there_is_a_typed_error() {
    let _suite = support::shared_blocking();
    let missing = ScreenSource::open(
        None,
        ScreenOptions {
            display: Some(":4711".into()),
            ..ScreenOptions::default()
        },
    );
    assert!(
        matches!(
            missing,
            Err(devices::DeviceError::Backend {
                kind: DeviceKind::Screen,
                ..
            })
        ),
        "{missing:?}"
    );
    let xvfb = Xvfb::start(320, 240);
    for bad in ["screen:3", "window:0x7fffff"] {
        let result = ScreenSource::open(
            Some(bad),
            ScreenOptions {
                display: Some(xvfb.display().to_owned()),
                ..ScreenOptions::default()
            },
        );
        assert!(
            matches!(result, Err(devices::DeviceError::NotFound { .. })),
            "{bad}: {result:?}"
        );
    }
    let bad_rate = ScreenSource::open(
        None,
        ScreenOptions {
            fps: 0,
            display: Some(xvfb.display().to_owned()),
            ..ScreenOptions::default()
        },
    );
    assert!(matches!(
        bad_rate,
        Err(devices::DeviceError::InvalidArgument(_))
    ));
}
