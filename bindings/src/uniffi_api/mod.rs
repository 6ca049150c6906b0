//! The uniffi API: Kotlin, Swift and Python bindings over `aula-core`.
//!
//! Threading: the SDK owns one multi-threaded tokio runtime (two workers, started on first
//! use). Every exported method is **blocking**: it runs its work on that runtime and returns
//! when done, so call `connect`, `publish_*`, `unpublish` and `disconnect` off the UI thread.
//! Room events arrive on one thread per room (`aula-events`), decoded media on decoder threads,
//! keyframe requests and logs on SDK threads. Calling a blocking method from inside an SDK
//! runtime worker is refused with [`AulaError::InvalidState`] rather than deadlocking.
//!
//! Every call on a disconnected room, and on its [`Whiteboard`], returns
//! [`AulaError::Disconnected`].

mod board_records;
mod bytes;
mod classroom;
mod classroom_records;
mod error;
mod listeners;
mod logging;
mod media;
mod publishers;
mod records;
mod whiteboard;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::{Room, RoomOptions, VideoPublishOptions};
use aula_protocol::TrackSid;

pub use board_records::{
    Item, ItemKind, ItemRef, Laser, LaserPointer, NewItem, Point, WhiteboardEvent,
};
pub use bytes::Bytes;
pub use classroom_records::{
    ChatDraft, ChatKind, ChatMessage, ChatPage, ChatPolicy, ClassroomState, ClassroomView,
    LeaveReason, Permissions, PermissionsPatch, Placement, RoomMode, RoomSettings,
    RoomSettingsPatch,
};
pub use error::{AulaError, ErrorCode};
pub use listeners::{AudioFrameSink, RoomListener, Subscription, VideoFrameSink};
pub use logging::{set_log_level, set_log_sink, LogLevel, LogSink};
pub use media::{read_stamp_i420, stamped_i420_frame};
pub use publishers::{AppVideoPublisher, EncodedVideoPublisher, KeyframeRequestListener};
pub use records::{
    ConnectionStatus, DecodedAudioFrame, DecodedVideoFrame, EncodedPushResult, FeedStats,
    Participant, ParticipantRole, PublishedTrackStats, ReceivedTrackStats, RoomStatistics,
    RoomUpdate, Stamp, Track, TrackKind, TrackOrigin,
};
pub use whiteboard::{Whiteboard, WhiteboardListener};

use listeners::{AudioSinkAdapter, Listeners, VideoSinkAdapter};

/// The SDK's runtime, started on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime, AulaError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("aula-rt")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| AulaError::Internal {
            reason: format!("cannot start the SDK runtime: {e}"),
        })
}

/// Runs `future` to completion on the SDK runtime, blocking the calling thread.
fn block_on<F: Future>(future: F) -> Result<F::Output, AulaError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(AulaError::InvalidState {
            reason: "blocking Aula call made from inside an async runtime worker".into(),
        });
    }
    Ok(runtime()?.block_on(future))
}

/// How to join.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ConnectOptions {
    /// Subscribe to every track automatically (default true).
    pub auto_subscribe: bool,
    /// Rejoin by itself after a lost connection (default true).
    pub reconnect: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            auto_subscribe: true,
            reconnect: true,
        }
    }
}

/// The default connect options.
#[uniffi::export]
pub fn default_connect_options() -> ConnectOptions {
    ConnectOptions::default()
}

/// Joins the room named in `token` on the server at `url` (`ws://host:port`). Blocking.
#[uniffi::export]
pub fn connect(
    url: String,
    token: String,
    options: ConnectOptions,
) -> Result<Arc<AulaRoom>, AulaError> {
    let core_options = RoomOptions {
        auto_subscribe: options.auto_subscribe,
        reconnect: options.reconnect,
        ..RoomOptions::default()
    };
    let (room, events) = block_on(Room::connect(&url, &token, core_options))??;
    let listeners: Arc<Listeners<dyn RoomListener>> = Arc::default();
    if let Err(err) =
        listeners.spawn_dispatcher("aula-events", events, RoomUpdate::from_event, |l, u| {
            l.on_update(u)
        })
    {
        let _ = block_on(room.disconnect());
        return Err(AulaError::Internal {
            reason: format!("cannot start the event thread: {err}"),
        });
    }
    Ok(Arc::new(AulaRoom {
        room: Mutex::new(Some(room)),
        listeners,
    }))
}

/// A joined room. Methods block (see the module docs); after `disconnect`, or once the server
/// closed the room, every call returns [`AulaError::Disconnected`].
#[derive(uniffi::Object)]
pub struct AulaRoom {
    room: Mutex<Option<Room>>,
    listeners: Arc<Listeners<dyn RoomListener>>,
}

impl AulaRoom {
    /// The core room, if still connected.
    pub(crate) fn room(&self) -> Result<Room, AulaError> {
        let room = self
            .room
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(AulaError::disconnected)?;
        if !room.is_connected() {
            return Err(AulaError::disconnected());
        }
        Ok(room)
    }
}

impl Drop for AulaRoom {
    fn drop(&mut self) {
        let room = self
            .room
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(room) = room {
            // Leaving politely needs the runtime; from a runtime thread, detach the leave.
            if tokio::runtime::Handle::try_current().is_ok() {
                if let Ok(rt) = runtime() {
                    rt.spawn(async move { room.disconnect().await });
                }
            } else {
                let _ = block_on(room.disconnect());
            }
        }
    }
}

#[uniffi::export]
impl AulaRoom {
    /// Leaves the room. Idempotent; later calls on the room return `Disconnected`.
    pub fn disconnect(&self) -> Result<(), AulaError> {
        let room = self.room.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(room) = room {
            block_on(room.disconnect())?;
        }
        Ok(())
    }

    /// Whether the room is still connected.
    pub fn is_connected(&self) -> bool {
        self.room().is_ok()
    }

    /// The room's name.
    pub fn name(&self) -> Result<String, AulaError> {
        Ok(self.room()?.info().name)
    }

    /// This client as the room sees it.
    pub fn local_participant(&self) -> Result<Participant, AulaError> {
        Ok(self.room()?.local_participant().into())
    }

    /// Everyone else in the room.
    pub fn remote_participants(&self) -> Result<Vec<Participant>, AulaError> {
        Ok(self
            .room()?
            .remote_participants()
            .into_iter()
            .map(Participant::from)
            .collect())
    }

    /// Registers a listener for room, participant, track and connection events from now on.
    /// Cancelling (or dropping) the returned subscription stops it.
    pub fn add_listener(
        &self,
        listener: Arc<dyn RoomListener>,
    ) -> Result<Arc<Subscription>, AulaError> {
        self.room()?;
        Ok(Arc::new(self.listeners.subscribe(listener)))
    }

    /// The room's shared whiteboard. Each call returns a new handle on the same board; the
    /// handle does not keep the room alive, and fails with `Disconnected` once the room is.
    pub fn whiteboard(self: Arc<Self>) -> Result<Arc<Whiteboard>, AulaError> {
        self.room()?;
        Ok(Arc::new(Whiteboard::new(&self)))
    }

    /// Sets (or with `None` removes) the sink receiving every decoded video frame.
    pub fn set_video_sink(&self, sink: Option<Arc<dyn VideoFrameSink>>) -> Result<(), AulaError> {
        self.room()?.set_video_sink(
            sink.map(|s| Arc::new(VideoSinkAdapter(s)) as Arc<dyn aula_core::VideoSink>),
        );
        Ok(())
    }

    /// Sets (or with `None` removes) the sink receiving every decoded audio frame.
    pub fn set_audio_sink(&self, sink: Option<Arc<dyn AudioFrameSink>>) -> Result<(), AulaError> {
        self.room()?.set_audio_sink(
            sink.map(|s| Arc::new(AudioSinkAdapter(s)) as Arc<dyn aula_core::AudioSink>),
        );
        Ok(())
    }

    /// Publishes a synthetic test pattern (stamped frames) encoded as H.264.
    pub fn publish_synthetic_video(
        &self,
        width: u32,
        height: u32,
        fps: u32,
        bitrate_bps: u32,
        name: String,
    ) -> Result<Track, AulaError> {
        let room = self.room()?;
        let source = SyntheticVideoSource::new(width, height, fps)?;
        let options = video_options(TrackOrigin::Camera, bitrate_bps, name)?;
        Ok(block_on(room.publish_video(source, options))??.into())
    }

    /// Publishes a synthetic sine tone encoded as Opus.
    pub fn publish_synthetic_audio(
        &self,
        frequency_hz: f32,
        name: String,
    ) -> Result<Track, AulaError> {
        let room = self.room()?;
        if !(frequency_hz.is_finite() && frequency_hz > 0.0 && frequency_hz < 24_000.0) {
            return Err(AulaError::InvalidArgument {
                reason: format!("tone frequency {frequency_hz} Hz outside (0, 24000)"),
            });
        }
        let source = SyntheticAudioSource::new(frequency_hz);
        Ok(block_on(room.publish_audio(source, &name))??.into())
    }

    /// Publishes video the app pushes as raw I420 or NV12 frames of `width`x`height`,
    /// encoded as H.264 at `fps` and `bitrate_bps`.
    pub fn publish_app_video(
        &self,
        width: u32,
        height: u32,
        fps: u32,
        bitrate_bps: u32,
        origin: TrackOrigin,
        name: String,
    ) -> Result<Arc<AppVideoPublisher>, AulaError> {
        let room = self.room()?;
        let (feed, source) = aula_core::app_video_source(width, height, fps)?;
        let options = video_options(origin, bitrate_bps, name)?;
        let info = block_on(room.publish_video(source, options))??;
        Ok(Arc::new(AppVideoPublisher {
            track: info.into(),
            feed,
        }))
    }

    /// Publishes pre-encoded H.264 the app pushes (see [`EncodedVideoPublisher`]).
    pub fn publish_encoded_video(
        &self,
        width: u32,
        height: u32,
        fps_hint: u32,
        origin: TrackOrigin,
        name: String,
    ) -> Result<Arc<EncodedVideoPublisher>, AulaError> {
        let room = self.room()?;
        let options = video_options(origin, 0, name)?;
        let (info, feed) = block_on(room.publish_encoded_video(width, height, fps_hint, options))??;
        Ok(Arc::new(EncodedVideoPublisher {
            track: info.into(),
            feed,
        }))
    }

    /// Stops publishing a track.
    pub fn unpublish(&self, track_sid: String) -> Result<(), AulaError> {
        let room = self.room()?;
        let sid = TrackSid::from(track_sid.as_str());
        block_on(room.unpublish(&sid))??;
        Ok(())
    }

    /// Subscribes to or unsubscribes from a remote track.
    pub fn set_subscribed(&self, track_sid: String, subscribed: bool) -> Result<(), AulaError> {
        let room = self.room()?;
        let sid = TrackSid::from(track_sid.as_str());
        block_on(room.set_subscribed(&sid, subscribed))??;
        Ok(())
    }

    /// Per-track statistics of everything sent and received so far.
    pub fn stats(&self) -> Result<RoomStatistics, AulaError> {
        let stats = self.room()?.stats();
        Ok(RoomStatistics {
            join_ms: stats.join_ms,
            published: stats.published.into_iter().map(Into::into).collect(),
            received: stats.received.into_iter().map(Into::into).collect(),
            sink_failures: stats.sink_failures,
        })
    }

    /// A signaling round trip to the server, ms.
    pub fn ping_ms(&self) -> Result<f64, AulaError> {
        let room = self.room()?;
        let rtt: Duration = block_on(room.ping())??;
        Ok(rtt.as_secs_f64() * 1000.0)
    }
}

/// Core publish options from the binding's arguments.
fn video_options(
    origin: TrackOrigin,
    bitrate_bps: u32,
    name: String,
) -> Result<VideoPublishOptions, AulaError> {
    let source = origin
        .video_source()
        .ok_or_else(|| AulaError::InvalidArgument {
            reason: "a video track needs a camera or screen-share origin".into(),
        })?;
    Ok(VideoPublishOptions {
        source,
        bitrate_bps: if bitrate_bps == 0 {
            VideoPublishOptions::default().bitrate_bps
        } else {
            bitrate_bps
        },
        name,
        ..VideoPublishOptions::default()
    })
}
