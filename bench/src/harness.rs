//! What every scenario needs: a server in-process, tokens, participants.

use aula_core::media::{SyntheticAudioSource, SyntheticVideoSource};
use aula_core::netsim::NetworkImpairment;
use aula_core::{Room, RoomOptions, VideoPublishOptions};
use aula_protocol::token::unix_now;
use aula_protocol::{Claims, Role};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};

/// A synthetic camera to publish.
#[derive(Clone, Copy, Debug)]
pub struct Camera {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, bit/s (the top layer's, with simulcast).
    pub bitrate_bps: u32,
    /// Send as simulcast layers (the default).
    pub simulcast: bool,
}

impl Camera {
    /// A camera at the bitrate that gives the synthetic picture clean frames: ~0.11 bit per
    /// pixel at 30 fps, within 150 kbit/s..4 Mbit/s.
    pub fn new(width: u32, height: u32, fps: u32, bitrate_kbps: Option<u32>) -> Self {
        let bitrate_bps = bitrate_kbps
            .map(|k| k * 1000)
            .unwrap_or_else(|| ((width * height * fps) / 18).clamp(150_000, 4_000_000));
        Self {
            width,
            height,
            fps,
            bitrate_bps,
            simulcast: true,
        }
    }
}

/// Starts a dev server on free loopback ports.
pub async fn start_server() -> anyhow::Result<ServerHandle> {
    Ok(Server::start(ServerConfig::dev(0, 0)).await?)
}

/// Joins `room` as `identity`, publishing `camera` (and a tone) if given, over `network`.
pub async fn join(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
    camera: Option<Camera>,
    network: Option<NetworkImpairment>,
) -> anyhow::Result<Room> {
    join_with(
        server,
        room,
        identity,
        role,
        camera,
        JoinOptions {
            network,
            ..JoinOptions::default()
        },
    )
    .await
}

/// How a benchmark participant joins.
#[derive(Clone)]
pub struct JoinOptions {
    /// Impairments on its media path.
    pub network: Option<NetworkImpairment>,
    /// Whether its encoders follow the bandwidth estimate.
    pub adaptive_bitrate: bool,
    /// Whether it repairs what it receives (NACK and FEC).
    pub loss_recovery: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            network: None,
            adaptive_bitrate: true,
            loss_recovery: true,
        }
    }
}

/// [`join`] with every option.
pub async fn join_with(
    server: &ServerHandle,
    room: &str,
    identity: &str,
    role: Role,
    camera: Option<Camera>,
    options: JoinOptions,
) -> anyhow::Result<Room> {
    let token =
        Claims::new(DEV_API_KEY, room, identity, role, unix_now(), 3600).sign(DEV_API_SECRET)?;
    let options = RoomOptions {
        network: options.network,
        adaptive_bitrate: options.adaptive_bitrate,
        loss_recovery: options.loss_recovery,
        ..RoomOptions::default()
    };
    let (room, _events) = Room::connect(&server.ws_url(), &token, options).await?;
    if let Some(camera) = camera {
        publish(&room, camera).await?;
    }
    Ok(room)
}

/// Publishes `camera` as synthetic stamped video and a tone as the microphone.
pub async fn publish(room: &Room, camera: Camera) -> anyhow::Result<()> {
    room.publish_video(
        SyntheticVideoSource::new(camera.width, camera.height, camera.fps)?,
        VideoPublishOptions {
            bitrate_bps: camera.bitrate_bps,
            simulcast: camera.simulcast,
            ..VideoPublishOptions::default()
        },
    )
    .await?;
    room.publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await?;
    Ok(())
}

/// Parses `1280x720`.
pub fn parse_resolution(text: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not WIDTHxHEIGHT"))?;
    Ok((w.parse()?, h.parse()?))
}

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
