//! Every published track stays on its media kind: after the server restarts and renumbers
//! tracks, a rejoining publisher's video is still video (and its audio audio), and the server
//! refuses media whose kind contradicts the announced source.

use crate::support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aula_core::media::SyntheticAudioSource;
use aula_core::signal_client::SignalClient;
use aula_core::{Room, RoomEvent};
use aula_protocol::{
    ClientMessage, ErrorCode, MediaKind, Role, ServerMessage, TrackSource, PROTOCOL_VERSION,
};
use aula_server::{Server, ServerConfig};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::net::{TcpListener, TcpStream};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler};

/// A TCP forwarder on loopback whose target the test switches: while it has none, connections
/// are closed at once, so a client's reconnects wait until the test is ready for them.
struct Switch {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Switch {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let current = Arc::clone(&target);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(to) = *current.lock().unwrap() else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, target }
    }

    fn point_at(&self, to: Option<SocketAddr>) {
        *self.target.lock().unwrap() = to;
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

/// A raw peer connection's events: none of them matter to the test.
struct Unheard;

impl PeerConnectionEventHandler for Unheard {}

/// Waits until `room` decodes stamped video and audible audio from `identity`.
async fn wait_for_video_and_audio(room: &Room, identity: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = room.stats();
        let video = support::stamped_frames_from(room, identity) >= 10;
        let audio = stats.received.iter().any(|r| {
            r.from == identity
                && r.kind == MediaKind::Audio
                && r.samples_decoded >= 24_000
                && r.audio_level > 500.0
        });
        if video && audio {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no video and audio from {identity} (video ok: {video}, audio ok: {audio}): {:#?}",
            stats.received
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_rejoining_a_restarted_server_keeps_each_track_on_its_kind() {
    support::init_test_log();
    let _suite = support::exclusive().await;
    let switch = Switch::start().await;
    let first = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    switch.point_at(Some(first.http_addr()));
    let (publisher, mut events) = Room::connect(
        &switch.url(),
        &support::token("restart", "teacher", Role::Teacher),
        Default::default(),
    )
    .await
    .expect("joins");
    support::publish_camera(&publisher, 160, 96, 15).await;
    publisher
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .expect("audio publishes");
    let old_sids: Vec<_> = publisher
        .stats()
        .published
        .iter()
        .map(|p| (p.track_sid.clone(), p.kind))
        .collect();

    // The server goes away; the publisher's reconnects are held back until the restarted
    // server has numbered someone else first, so that its new track ids reuse the old ones.
    switch.point_at(None);
    first.shutdown().await;
    let second = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server restarts");
    let (student, _s) = support::join(&second, "restart", "student", Role::Student).await;
    switch.point_at(Some(second.http_addr()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(RoomEvent::Reconnected { .. })) => break,
            Ok(Some(_)) => continue,
            other => panic!("the publisher did not rejoin: {other:?}"),
        }
    }
    let new_sids: Vec<_> = publisher
        .stats()
        .published
        .iter()
        .map(|p| (p.track_sid.clone(), p.kind))
        .collect();
    // The restarted server numbered the student first, so the tracks' new ids are the old ones
    // shifted by one: the new video id is the old audio id, which is what used to make the
    // client rebind its video publication to the audio track (and send no video).
    let old_set: Vec<_> = old_sids.iter().map(|(sid, _)| sid.clone()).collect();
    let new_set: Vec<_> = new_sids.iter().map(|(sid, _)| sid.clone()).collect();
    assert!(
        new_set.iter().any(|sid| old_set.contains(sid))
            && !new_set.iter().all(|sid| old_set.contains(sid)),
        "the restart must reuse some old track ids for new tracks, or this test proves \
         nothing: before {old_sids:?}, after {new_sids:?}"
    );
    let mut kinds: Vec<MediaKind> = new_sids.iter().map(|(_, kind)| *kind).collect();
    kinds.sort_by_key(|k| k.to_string());
    assert_eq!(kinds, [MediaKind::Audio, MediaKind::Video], "{new_sids:?}");
    wait_for_video_and_audio(&student, "teacher", Duration::from_secs(20)).await;
    publisher.disconnect().await;
    student.disconnect().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_on_a_track_announced_as_a_microphone_is_refused_and_never_forwarded() {
    support::init_test_log();
    let _suite = support::exclusive().await;
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let (watcher, mut watcher_events) =
        support::join(&server, "kinds", "student", Role::Student).await;

    // A raw publisher: announces a microphone, then sends H.264 on a track of that id.
    let (signal, mut events) = SignalClient::connect(&server.ws_url())
        .await
        .expect("connects");
    let id = signal.next_id();
    signal
        .request(ClientMessage::Join {
            id,
            protocol_version: PROTOCOL_VERSION,
            room: "kinds".into(),
            token: support::token("kinds", "liar", Role::Teacher),
            auto_subscribe: false,
        })
        .await
        .expect("joins");
    let id = signal.next_id();
    signal
        .request(ClientMessage::PublishTrack {
            id,
            cid: "mic-1".into(),
            source: TrackSource::Microphone,
            name: "mic".into(),
            width: None,
            height: None,
            layers: Vec::new(),
        })
        .await
        .expect("announced");

    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().expect("codecs");
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).expect("interceptors");
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Unheard))
        .with_udp_addrs(vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()])
        .build()
        .await
        .expect("peer connection");
    let h264 = RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .into(),
        rtcp_feedback: vec![],
    };
    let ssrc = 0x5eed_1234;
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "liar".into(),
                "mic-1".into(),
                "mic-1".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: h264.clone(),
                    ..Default::default()
                }],
            ),
        )
        .expect("track"),
    );
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .expect("added");
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer).await.expect("local");
    // Loopback host candidates gather at once; wait for one to be in the description.
    let deadline = Instant::now() + Duration::from_secs(5);
    let sdp = loop {
        let sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        if sdp.contains("a=candidate") {
            break sdp;
        }
        assert!(Instant::now() < deadline, "no local candidate");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let id = signal.next_id();
    let ServerMessage::PublisherAnswer { sdp, .. } = signal
        .request(ClientMessage::PublisherOffer { id, sdp })
        .await
        .expect("answered")
    else {
        panic!("not an answer");
    };
    pc.set_remote_description(RTCSessionDescription::answer(sdp).expect("answer"))
        .await
        .expect("remote");
    let payload_type = sender
        .get_parameters()
        .await
        .expect("parameters")
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("video/H264"))
        .map(|c| c.payload_type)
        .expect("H.264 negotiated");
    let writer = tokio::spawn(async move {
        // Not a picture anyone decodes: the server looks at the kind, never at the payload.
        let nal = bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff]);
        loop {
            let sample = Sample {
                data: nal.clone(),
                duration: Duration::from_millis(33),
                ..Sample::new(Instant::now())
            };
            let _ = track
                .sample_writer(ssrc, payload_type)
                .write_sample(&sample)
                .await;
            tokio::time::sleep(Duration::from_millis(33)).await;
        }
    });

    let refusal = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(msg) = events.recv().await {
            if let ServerMessage::Error {
                code: ErrorCode::TrackKindMismatch,
                message,
                ..
            } = msg
            {
                return message;
            }
        }
        panic!("the signaling connection closed");
    })
    .await
    .expect("the server tells the publisher its track was refused");
    assert!(refusal.contains("mic-1"), "{refusal}");
    // Nobody is offered the track.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok(event) = watcher_events.try_recv() {
        assert!(
            !matches!(event, RoomEvent::TrackPublished { .. }),
            "the refused track was announced: {event:?}"
        );
    }
    assert!(watcher.stats().received.is_empty());
    let (_, metrics) = support::http_get(&server, "/metrics").await;
    assert!(
        metrics.contains("aula_track_kind_mismatches_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"aula_signal_errors_total{code="track_kind_mismatch"} 1"#),
        "{metrics}"
    );
    writer.abort();
    let _ = pc.close().await;
    watcher.disconnect().await;
    server.shutdown().await;
}
