//! App-supplied media end to end: raw frames pushed by the app, and pre-encoded H.264 from an
//! app's own encoder, arrive decoded on the other side with their stamps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::clock::unix_micros;
use aula_core::media::{
    FrameStamp, H264Encoder, H264EncoderConfig, SyntheticVideoSource, VideoFrame, STAMP_TIME_MASK,
};
use aula_core::{app_video_source, PushOutcome, RoomError, VideoPublishOptions, VideoSink};
use aula_protocol::{ParticipantId, Role, TrackSid};
use aula_server::{Server, ServerConfig};

use crate::support;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 15;

/// Collects the stamps of decoded frames.
#[derive(Default)]
struct Stamps(Mutex<Vec<FrameStamp>>);

impl VideoSink for Stamps {
    fn on_video_frame(
        &self,
        _participant: &ParticipantId,
        _track: &TrackSid,
        frame: &VideoFrame,
        stamp: Option<FrameStamp>,
    ) {
        assert_eq!((frame.width, frame.height), (WIDTH, HEIGHT));
        if let Some(stamp) = stamp {
            self.0.lock().expect("not poisoned").push(stamp);
        }
    }
}

impl Stamps {
    fn snapshot(&self) -> Vec<FrameStamp> {
        self.0.lock().expect("not poisoned").clone()
    }
}

async fn wait_for(stamps: &Stamps, count: usize, timeout: Duration) -> Vec<FrameStamp> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = stamps.snapshot();
        if seen.len() >= count || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stamped_frame(source: &mut SyntheticVideoSource, sequence: u32) -> (FrameStamp, VideoFrame) {
    let stamp = FrameStamp {
        sequence,
        capture_time_us: unix_micros(),
    };
    (stamp, source.frame(stamp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_app_frames_keep_their_stamps() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let sender = support::join(&server, "app-raw", "camera-app", Role::Teacher)
        .await
        .0;
    let receiver = support::join(&server, "app-raw", "viewer", Role::Teacher)
        .await
        .0;
    let stamps = Arc::new(Stamps::default());
    receiver.set_video_sink(Some(stamps.clone()));

    let (feed, source) = app_video_source(WIDTH, HEIGHT, FPS).expect("valid feed");
    sender
        .publish_video(source, VideoPublishOptions::default())
        .await
        .expect("publishes");
    let mut pattern = SyntheticVideoSource::new(WIDTH, HEIGHT, FPS).expect("valid");
    let mut sent = HashMap::new();
    let pusher = {
        let feed = feed.clone();
        tokio::task::spawn_blocking(move || {
            for sequence in 9_000..9_000 + 4 * FPS {
                let (stamp, frame) = stamped_frame(&mut pattern, sequence);
                // Half the frames arrive as NV12, as from many camera APIs.
                if sequence % 2 == 0 {
                    let mut uv = Vec::with_capacity(frame.u.len() * 2);
                    for (u, v) in frame.u.iter().zip(&frame.v) {
                        uv.extend_from_slice(&[*u, *v]);
                    }
                    feed.push_nv12(&frame.y, &uv, stamp.capture_time_us)
                        .expect("push nv12");
                } else {
                    feed.push(frame).expect("push i420");
                }
                sent.insert(sequence, stamp.capture_time_us & STAMP_TIME_MASK);
                std::thread::sleep(Duration::from_secs(1) / FPS);
            }
            sent
        })
    };
    let seen = wait_for(&stamps, 20, Duration::from_secs(30)).await;
    let sent = pusher.await.expect("pusher ran");
    assert!(seen.len() >= 20, "only {} stamped frames", seen.len());
    for stamp in &seen {
        assert_eq!(
            sent.get(&stamp.sequence),
            Some(&stamp.capture_time_us),
            "stamp {stamp:?} is not one the app pushed"
        );
    }
    // Bad frames are refused with a typed error, not a panic.
    assert!(matches!(
        feed.push_i420(&[0; 10], 0),
        Err(RoomError::InvalidArgument(_))
    ));
    sender.disconnect().await;
    receiver.disconnect().await;
    // The publication stopped: pushing reports it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feed.is_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        feed.push(VideoFrame::new_black(WIDTH, HEIGHT)),
        Err(RoomError::InvalidState(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_encoded_h264_is_sent_as_is_and_keyframe_requests_reach_the_app() {
    let _suite = support::shared().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server");
    let sender = support::join(&server, "app-enc", "hw-encoder-app", Role::Teacher)
        .await
        .0;
    let receiver = support::join(&server, "app-enc", "viewer", Role::Teacher)
        .await
        .0;
    let stamps = Arc::new(Stamps::default());
    receiver.set_video_sink(Some(stamps.clone()));

    let (info, feed) = sender
        .publish_encoded_video(WIDTH, HEIGHT, FPS, VideoPublishOptions::default())
        .await
        .expect("publishes");
    assert_eq!(info.width, Some(WIDTH));
    let requests = Arc::new(AtomicU64::new(0));
    {
        let requests = Arc::clone(&requests);
        feed.set_keyframe_request_handler(Some(Box::new(move || {
            requests.fetch_add(1, Ordering::Relaxed);
        })));
    }

    let mut encoder = H264Encoder::new(H264EncoderConfig {
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        bitrate_bps: 300_000,
    })
    .expect("encoder");
    let mut pattern = SyntheticVideoSource::new(WIDTH, HEIGHT, FPS).expect("valid");

    // Bad input is refused: not Annex-B, and a keyframe flag that does not match the content.
    assert!(matches!(
        feed.push(&[1, 2, 3, 4, 5], false, 0),
        Err(RoomError::InvalidArgument(_))
    ));
    assert!(matches!(
        feed.push(&[0, 0, 0, 1, 0x41, 0x9a, 0, 0], true, 0),
        Err(RoomError::InvalidArgument(_))
    ));

    let mut sent = HashMap::new();
    let mut dropped_before_keyframe = 0;
    let mut keyframes_pushed = 0;
    let started = Instant::now();
    let mut sequence = 20_000u32;
    let mut force = false;
    while started.elapsed() < Duration::from_secs(4) {
        let (stamp, frame) = stamped_frame(&mut pattern, sequence);
        sequence += 1;
        // Answer keyframe requests as a hardware encoder would (the publication asks for one
        // at start), except during the first two frames: their keyframe is held back below so
        // that a delta frame reaches the feed before any keyframe and must be dropped.
        if feed.take_keyframe_request() {
            force = true;
        }
        let Some(encoded) = encoder
            .encode(&frame, force && sequence > 20_002)
            .expect("encodes")
        else {
            continue;
        };
        if sequence <= 20_002 && encoded.keyframe {
            // Hold back the encoder's own first keyframe to see deltas dropped.
            continue;
        }
        if encoded.keyframe {
            force = false;
            keyframes_pushed += 1;
        }
        match feed
            .push(&encoded.data, encoded.keyframe, stamp.capture_time_us)
            .expect("push accepted")
        {
            PushOutcome::Queued => {
                sent.insert(stamp.sequence, stamp.capture_time_us & STAMP_TIME_MASK);
            }
            PushOutcome::DroppedAwaitingKeyframe => dropped_before_keyframe += 1,
            PushOutcome::DroppedQueueFull => {}
        }
        tokio::time::sleep(Duration::from_secs(1) / FPS).await;
    }
    let seen = wait_for(&stamps, 20, Duration::from_secs(10)).await;
    assert!(seen.len() >= 20, "only {} stamped frames", seen.len());
    for stamp in &seen {
        assert_eq!(sent.get(&stamp.sequence), Some(&stamp.capture_time_us));
    }
    assert!(
        dropped_before_keyframe >= 1,
        "delta frames before a keyframe are dropped"
    );
    assert!(keyframes_pushed >= 1);
    assert!(
        requests.load(Ordering::Relaxed) >= 1,
        "the app was asked for a keyframe"
    );
    let published = sender.stats().published;
    assert_eq!(published.len(), 1);
    assert!(published[0].frames_sent as usize >= sent.len().saturating_sub(8));
    assert!(published[0].keyframes >= 1);

    sender.disconnect().await;
    assert!(matches!(
        feed.push(&[0, 0, 0, 1, 0x65, 0x88], true, 0),
        Err(RoomError::InvalidState(_))
    ));
    assert!(matches!(
        sender
            .publish_encoded_video(WIDTH, HEIGHT, FPS, VideoPublishOptions::default())
            .await,
        Err(RoomError::InvalidState(_))
    ));
    receiver.disconnect().await;
}
