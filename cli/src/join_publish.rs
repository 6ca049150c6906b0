//! What `aula join --publish` publishes, and when: each source as soon as the participant may
//! publish it (at once in a plain call; once on stage in a class), waiting meanwhile in the
//! lobby or the audience, and again whenever the server ended it and the right comes back
//! (moved off stage, then back on).

use std::sync::Arc;

use anyhow::Context;
use aula_core::devices::{DeviceEvent, DeviceMonitor};
use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::{Room, RoomError, VideoPublishOptions};
use aula_protocol::{ErrorCode, MediaKind, TrackSid, TrackSource};
use tokio::sync::mpsc;

use crate::join::{default_bitrate_bps, local, JoinArgs, Publish};

/// One thing `--publish` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// The synthetic stamped picture.
    Video,
    /// The synthetic tone.
    Audio,
    /// This machine's camera.
    Camera,
    /// This machine's microphone.
    Microphone,
    /// This machine's screen.
    Screen,
}

impl Item {
    fn source(self) -> TrackSource {
        match self {
            Item::Video | Item::Camera => TrackSource::Camera,
            Item::Audio | Item::Microphone => TrackSource::Microphone,
            Item::Screen => TrackSource::ScreenShare,
        }
    }

    fn kind(self) -> MediaKind {
        self.source().kind()
    }

    fn name(self) -> &'static str {
        match self {
            Item::Video => "video",
            Item::Audio => "audio",
            Item::Camera => "camera",
            Item::Microphone => "microphone",
            Item::Screen => "screen",
        }
    }
}

/// What the join loop tells the publisher.
#[derive(Debug)]
pub enum Nudge {
    /// Something changed (placement, permissions): publish what may be published now.
    Check,
    /// The server ended this local track.
    Ended(TrackSid),
    /// The room rejoined: its tracks carry new ids.
    Reconnected,
}

/// The publisher task's handle.
pub struct Publisher {
    nudges: mpsc::UnboundedSender<Nudge>,
    /// A failure that ends the run (anything but "not allowed yet").
    pub failures: mpsc::UnboundedReceiver<anyhow::Error>,
}

impl Publisher {
    /// Starts publishing what `publish` names into `room` as it becomes allowed. Device
    /// events of the devices it opens go to `devices`.
    pub fn start(
        room: Room,
        args: Arc<JoinArgs>,
        publish: &Publish,
        devices: mpsc::UnboundedSender<DeviceEvent>,
    ) -> Self {
        let mut wanted = Vec::new();
        for (on, item) in [
            (publish.video, Item::Video),
            (publish.audio, Item::Audio),
            (publish.camera, Item::Camera),
            (publish.microphone, Item::Microphone),
            (publish.screen, Item::Screen),
        ] {
            if on {
                wanted.push(Wanted { item, live: None });
            }
        }
        let (nudges, mut inbox) = mpsc::unbounded_channel();
        let (fail, failures) = mpsc::unbounded_channel();
        let mut state = State {
            room,
            args,
            wanted,
            devices,
            waiting_noted: false,
        };
        tokio::spawn(async move {
            // The first check publishes what the participant may publish on arrival.
            if let Err(err) = state.publish_allowed().await {
                let _ = fail.send(err);
                return;
            }
            while let Some(nudge) = inbox.recv().await {
                match nudge {
                    Nudge::Check => {}
                    Nudge::Ended(sid) => state.ended(&sid),
                    Nudge::Reconnected => state.resync(),
                }
                // Coalesce what queued meanwhile into one check.
                while let Ok(more) = inbox.try_recv() {
                    match more {
                        Nudge::Check => {}
                        Nudge::Ended(sid) => state.ended(&sid),
                        Nudge::Reconnected => state.resync(),
                    }
                }
                if let Err(err) = state.publish_allowed().await {
                    let _ = fail.send(err);
                    return;
                }
            }
        });
        Self { nudges, failures }
    }

    /// Tells the publisher something changed.
    pub fn nudge(&self, nudge: Nudge) {
        let _ = self.nudges.send(nudge);
    }
}

struct Wanted {
    item: Item,
    /// The track while it is published.
    live: Option<TrackSid>,
}

struct State {
    room: Room,
    args: Arc<JoinArgs>,
    wanted: Vec<Wanted>,
    devices: mpsc::UnboundedSender<DeviceEvent>,
    /// Whether "waiting to publish" was said since the last publication.
    waiting_noted: bool,
}

impl State {
    /// Publishes every wanted item that is not live and may be published now.
    async fn publish_allowed(&mut self) -> anyhow::Result<()> {
        let view = self.room.classroom();
        let mut waiting = Vec::new();
        for index in 0..self.wanted.len() {
            let item = self.wanted[index].item;
            if self.wanted[index].live.is_some() {
                continue;
            }
            if !view.may_publish(item.source()) {
                waiting.push(item.name());
                continue;
            }
            match self.publish(item).await {
                Ok(sid) => {
                    eprintln!("published {} ({sid})", item.name());
                    self.wanted[index].live = Some(sid);
                    self.waiting_noted = false;
                }
                // The right went away meanwhile (moved off stage): wait for it again.
                Err(err) if not_allowed(&err) => waiting.push(item.name()),
                Err(err) => return Err(err),
            }
        }
        if !waiting.is_empty() && !self.waiting_noted {
            eprintln!(
                "waiting to publish {} (in the {}: not allowed yet)",
                waiting.join(", "),
                self.room.placement()
            );
            self.waiting_noted = true;
        }
        Ok(())
    }

    async fn publish(&mut self, item: Item) -> anyhow::Result<TrackSid> {
        let args = &self.args;
        let (track, monitor): (aula_protocol::TrackInfo, Option<DeviceMonitor>) = match item {
            Item::Video => {
                let (width, height) = args.resolution;
                let source = SyntheticVideoSource::new(width, height, args.fps)
                    .context("cannot create the synthetic video source")?;
                let bitrate_bps = args
                    .bitrate_kbps
                    .map(|k| k * 1000)
                    .unwrap_or_else(|| default_bitrate_bps(width, height, args.fps));
                let options = VideoPublishOptions {
                    bitrate_bps,
                    ..VideoPublishOptions::default()
                };
                let track = self
                    .room
                    .publish_video(source, options)
                    .await
                    .context("cannot publish video")?;
                (track, None)
            }
            Item::Audio => {
                let track = self
                    .room
                    .publish_audio(SyntheticAudioSource::new(440.0), "microphone")
                    .await
                    .context("cannot publish audio")?;
                (track, None)
            }
            Item::Camera => {
                let (track, monitor) = local::publish_camera(&self.room, args).await?;
                (track, Some(monitor))
            }
            Item::Microphone => {
                let (track, monitor) = local::publish_microphone(&self.room, args).await?;
                (track, Some(monitor))
            }
            Item::Screen => {
                let (track, monitor) = local::publish_screen(&self.room, args).await?;
                (track, Some(monitor))
            }
        };
        if let Some(monitor) = monitor {
            let mut events = monitor.events();
            let devices = self.devices.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    let _ = devices.send(event);
                }
            });
        }
        Ok(track.sid)
    }

    /// The server ended `sid`: it is published again once allowed.
    fn ended(&mut self, sid: &TrackSid) {
        for wanted in &mut self.wanted {
            if wanted.live.as_ref() == Some(sid) {
                eprintln!("{} ended by the server", wanted.item.name());
                wanted.live = None;
            }
        }
    }

    /// After a rejoin the room republished its tracks under new ids (and ended those it may
    /// no longer publish, which [`Nudge::Ended`] reported under their old ids): take the new
    /// ids, matched by kind in publication order.
    fn resync(&mut self) {
        let published: Vec<(TrackSid, MediaKind)> = self
            .room
            .stats()
            .published
            .into_iter()
            .map(|p| (p.track_sid, p.kind))
            .collect();
        let mut claimed: Vec<TrackSid> = self
            .wanted
            .iter()
            .filter_map(|w| w.live.clone())
            .filter(|sid| published.iter().any(|(s, _)| s == sid))
            .collect();
        for wanted in &mut self.wanted {
            let Some(sid) = &wanted.live else { continue };
            if published.iter().any(|(s, _)| s == sid) {
                continue;
            }
            let fresh = published
                .iter()
                .find(|(s, kind)| *kind == wanted.item.kind() && !claimed.contains(s))
                .map(|(s, _)| s.clone());
            if let Some(fresh) = &fresh {
                claimed.push(fresh.clone());
            }
            wanted.live = fresh;
        }
    }
}

/// Whether publishing failed only because the participant may not publish now.
fn not_allowed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<RoomError>(),
            Some(RoomError::Refused {
                code: ErrorCode::PermissionDenied,
                ..
            })
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_permission_means_waiting() {
        let refused = anyhow::Error::new(RoomError::Refused {
            code: ErrorCode::PermissionDenied,
            message: "audience".into(),
        })
        .context("cannot publish video");
        assert!(not_allowed(&refused));
        let broken = anyhow::Error::new(RoomError::Media("encoder".into())).context("cannot");
        assert!(!not_allowed(&broken));
        let other = anyhow::Error::new(RoomError::Refused {
            code: ErrorCode::InvalidRequest,
            message: "bad sdp".into(),
        });
        assert!(!not_allowed(&other));
    }

    #[test]
    fn each_item_asks_for_its_source() {
        assert_eq!(Item::Video.source(), TrackSource::Camera);
        assert_eq!(Item::Microphone.kind(), MediaKind::Audio);
        assert_eq!(Item::Screen.source(), TrackSource::ScreenShare);
    }
}
