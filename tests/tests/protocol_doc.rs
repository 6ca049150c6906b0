//! docs/protocol.md against the wire.
//!
//! The document is what client writers have: this test holds it to the server. It reads every
//! ```json example out of the document (each must parse as the message type it shows), sends
//! the client examples to a running server as written (only ids, tokens, track ids and SDP
//! filled in) and expects the replies the document names, and checks every message the server
//! sends against the document's examples of that type (no undocumented field, no documented
//! field missing that every example has, the same JSON kinds) and against the events table.
//! It also checks the order the document promises (`joined` first; `track_removed` before
//! `participant_left`) and the SDP rules it states: ICE-lite, one UDP and one passive TCP
//! candidate, component 1 only; forwarded sections `sendonly` with `a=msid:<participant>
//! <track>`, ended ones `inactive` and taken over by the next track of their kind; H.264
//! constrained baseline in packetization mode 1 and Opus only, whatever a publisher offers
//! first, and a section offering neither rejected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aula_core::media::SyntheticAudioSource;
use aula_core::RoomEvent;
use aula_protocol::{ClientMessage, Role, ServerMessage};
use aula_server::{Server, ServerConfig, ServerHandle, DEV_API_KEY, DEV_API_SECRET};
use futures::{SinkExt, StreamExt};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};

use crate::support;

// ---------------------------------------------------------------------------------------------
// The document

fn protocol_md() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every JSON value in the document's ```json blocks, in order. Lines may start with `→ ` or
/// `← ` (who sends); a value may span lines.
fn json_examples(doc: &str) -> Vec<Value> {
    let mut examples = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        match &mut block {
            None if trimmed.starts_with("```json") => block = Some(String::new()),
            None => {}
            // A block that elides parts (`{...}`) is an outline, not an example.
            Some(text) if trimmed.starts_with("```") && text.contains("...}") => block = None,
            Some(text) if trimmed.starts_with("```") && text.contains("\"...\"") => block = None,
            Some(text) if trimmed.starts_with("```") => {
                let values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
                for value in values {
                    let value = value.unwrap_or_else(|e| {
                        panic!("a ```json block of docs/protocol.md is not JSON ({e}):\n{text}")
                    });
                    examples.push(value);
                }
                block = None;
            }
            Some(text) => {
                let content = trimmed
                    .strip_prefix('→')
                    .or_else(|| trimmed.strip_prefix('←'))
                    .unwrap_or(trimmed);
                text.push_str(content);
                text.push('\n');
            }
        }
    }
    assert!(block.is_none(), "an unclosed ```json block");
    examples
}

/// The events tables (every `| type | fields | meaning |` table): type → its fields.
fn events_table(doc: &str) -> HashMap<String, BTreeSet<String>> {
    let mut events = HashMap::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| type | fields | meaning |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(name), Some(fields)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        let fields = fields
            .split(',')
            .map(|f| f.trim().trim_matches('`').to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        events.insert(name.to_owned(), fields);
    }
    assert!(
        events.len() >= 8,
        "the events tables were not found: {events:?}"
    );
    events
}

/// The JSON kind of a value, as the document's examples show it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The name nested objects under `key` are shaped by: one shape for every TrackInfo, whatever
/// message carries it (`track`, `tracks[]`), and so on.
fn nested(key: &str) -> String {
    match key {
        "tracks" => "track".into(),
        "participants" => "participant".into(),
        "layers" => "layer".into(),
        other => other.into(),
    }
}

#[derive(Default, Debug)]
struct Field {
    /// In how many examples of the object it appears.
    seen: usize,
    kinds: BTreeSet<&'static str>,
    /// Kinds of array elements.
    elements: BTreeSet<&'static str>,
}

#[derive(Default, Debug)]
struct Shape {
    examples: usize,
    fields: BTreeMap<String, Field>,
}

/// What the document's examples say messages look like.
#[derive(Default)]
struct Documented {
    shapes: HashMap<String, Shape>,
    events: HashMap<String, BTreeSet<String>>,
    /// Client examples by type, as written.
    client: HashMap<String, Vec<Value>>,
}

impl Documented {
    fn read() -> Self {
        let doc = protocol_md();
        let mut documented = Documented {
            events: events_table(&doc),
            ..Documented::default()
        };
        for example in json_examples(&doc) {
            let as_client = serde_json::from_value::<ClientMessage>(example.clone()).is_ok();
            let as_server = serde_json::from_value::<ServerMessage>(example.clone()).is_ok();
            let object = example.as_object().expect("every example is a JSON object");
            // Examples of a field's value (room settings, say) are not messages.
            let Some(ty) = object.get("type").and_then(Value::as_str) else {
                continue;
            };
            assert!(
                as_client || as_server,
                "docs/protocol.md example is neither a client nor a server message: {example}"
            );
            if as_client {
                documented
                    .client
                    .entry(ty.to_owned())
                    .or_default()
                    .push(example.clone());
                documented.learn_nested(object);
            }
            if as_server {
                documented.learn(&format!("message {ty}"), object);
            }
        }
        documented
    }

    fn learn(&mut self, name: &str, object: &Map<String, Value>) {
        let shape = self.shapes.entry(name.to_owned()).or_default();
        shape.examples += 1;
        for (key, value) in object {
            let field = shape.fields.entry(key.clone()).or_default();
            field.seen += 1;
            field.kinds.insert(kind(value));
            if let Value::Array(items) = value {
                field.elements.extend(items.iter().map(kind));
            }
        }
        self.learn_nested(object);
    }

    fn learn_nested(&mut self, object: &Map<String, Value>) {
        for (key, value) in object {
            match value {
                Value::Object(inner) => self.learn(&nested(key), inner),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(inner) = item {
                            self.learn(&nested(key), inner);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// What is wrong with `object` against the shape `name` (empty: nothing).
    fn check(&self, name: &str, object: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
        let Some(shape) = self.shapes.get(name) else {
            errors.push(format!("{path}: no example shows a {name}"));
            return;
        };
        for (key, value) in object {
            let Some(field) = shape.fields.get(key) else {
                errors.push(format!("{path}.{key}: not in any example of {name}"));
                continue;
            };
            if !field.kinds.contains(kind(value)) {
                errors.push(format!(
                    "{path}.{key}: a {} on the wire, {:?} in the examples",
                    kind(value),
                    field.kinds
                ));
            }
            match value {
                Value::Object(inner) => {
                    self.check(&nested(key), inner, &format!("{path}.{key}"), errors)
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if !field.elements.is_empty() && !field.elements.contains(kind(item)) {
                            errors.push(format!("{path}.{key}[{i}]: a {}", kind(item)));
                        }
                        if let Value::Object(inner) = item {
                            self.check(&nested(key), inner, &format!("{path}.{key}[{i}]"), errors);
                        }
                    }
                }
                _ => {}
            }
        }
        for (key, field) in &shape.fields {
            if field.seen == shape.examples && !object.contains_key(key) {
                errors.push(format!(
                    "{path}.{key}: in every example of {name}, not on the wire"
                ));
            }
        }
    }

    /// Checks a message the server sent; returns what is wrong.
    fn check_server_message(&self, message: &Value) -> Vec<String> {
        let object = message.as_object().expect("the server sends objects");
        let ty = object["type"].as_str().expect("with a type");
        let mut errors = Vec::new();
        let has_example = self.shapes.contains_key(&format!("message {ty}"));
        if has_example {
            self.check(&format!("message {ty}"), object, ty, &mut errors);
        }
        if let Some(fields) = self.events.get(ty) {
            let on_wire: BTreeSet<String> =
                object.keys().filter(|k| *k != "type").cloned().collect();
            if &on_wire != fields {
                errors.push(format!(
                    "{ty}: fields {on_wire:?} on the wire, {fields:?} in the events table"
                ));
            }
        }
        if !has_example && !self.events.contains_key(ty) {
            errors.push(format!(
                "{ty}: neither an example nor an event in the document"
            ));
        }
        errors
    }

    /// The document's example of a client message of type `ty` (the `n`th), as written.
    fn client_example(&self, ty: &str, n: usize) -> Map<String, Value> {
        self.client
            .get(ty)
            .and_then(|examples| examples.get(n))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| panic!("docs/protocol.md has no example {n} of {ty}"))
    }
}

// ---------------------------------------------------------------------------------------------
// A client on the raw wire

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signaling connection that records every message the server sends.
struct WireClient {
    ws: Ws,
    next_id: u64,
    /// Every server message, in order.
    received: Vec<Value>,
    /// Read but not yet taken by `next_of`.
    unread: std::collections::VecDeque<Value>,
}

impl WireClient {
    async fn connect(server: &ServerHandle) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}/rtc", server.ws_url()))
            .await
            .expect("the server accepts WebSockets");
        Self {
            ws,
            next_id: 100,
            received: Vec::new(),
            unread: Default::default(),
        }
    }

    async fn send(&mut self, mut message: Map<String, Value>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if message.contains_key("id") {
            message.insert("id".into(), json!(id));
        }
        self.ws
            .send(Message::text(Value::Object(message).to_string()))
            .await
            .expect("send");
        id
    }

    async fn read_one(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.ws.next())
                .await
                .expect("the server sends within 15 s")
                .expect("the socket is open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(&text).expect("the server sends JSON");
                self.received.push(value.clone());
                return value;
            }
        }
    }

    /// The next message satisfying `wanted`; others are kept for later.
    async fn next_of(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.unread.iter().position(&wanted) {
            return self.unread.remove(i).expect("present");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no {what} came");
            let message = self.read_one().await;
            if wanted(&message) {
                return message;
            }
            self.unread.push_back(message);
        }
    }

    async fn reply_to(&mut self, id: u64) -> Value {
        self.next_of(&format!("reply to request {id}"), |m| {
            m["request_id"] == json!(id)
        })
        .await
    }

    async fn next_type(&mut self, ty: &str) -> Value {
        self.next_of(ty, |m| m["type"] == ty).await
    }
}

// ---------------------------------------------------------------------------------------------
// A WebRTC peer (webrtc-rs) to make offers and answers with

struct Gathered(Arc<Notify>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathered {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.0.notify_one();
        }
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: Arc<Notify>,
}

impl Peer {
    async fn new(mut media_engine: MediaEngine) -> Self {
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .expect("interceptors");
        let gathered = Arc::new(Notify::new());
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                    .build(),
            )
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Gathered(Arc::clone(&gathered))))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("a peer connection");
        Self {
            pc: Arc::new(pc),
            gathered,
        }
    }

    async fn local_sdp(&self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.gathered.notified()).await;
        self.pc
            .local_description()
            .await
            .expect("a local description")
            .sdp
    }

    async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.expect("offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("apply offer");
        self.local_sdp().await
    }

    async fn answer(&self, offer: &str) -> String {
        let offer = RTCSessionDescription::offer(offer.to_owned()).expect("an offer");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("apply the server's offer");
        let answer = self.pc.create_answer(None).await.expect("answer");
        self.pc
            .set_local_description(answer)
            .await
            .expect("apply answer");
        self.local_sdp().await
    }

    async fn apply_answer(&self, answer: &str) {
        let answer = RTCSessionDescription::answer(answer.to_owned()).expect("an answer");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("apply the server's answer");
    }

    async fn send_only(&self, kind: RtpCodecKind, preferences: Vec<RTCRtpCodecParameters>) {
        let transceiver = self
            .pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    // One encoding naming no codec: every registered codec is offered, in order.
                    send_encodings: vec![RTCRtpEncodingParameters::default()],
                    ..Default::default()
                }),
            )
            .await
            .expect("transceiver");
        if !preferences.is_empty() {
            transceiver
                .set_codec_preferences(preferences)
                .await
                .expect("codec preferences");
        }
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

const VP8: (&str, u32, u16, &str, u8) = ("video/VP8", 90_000, 0, "", 96);
const H264_HIGH: (&str, u32, u16, &str, u8) = (
    "video/H264",
    90_000,
    0,
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
    100,
);
const H264_BASELINE_CB: (&str, u32, u16, &str, u8) = (
    "video/H264",
    90_000,
    0,
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    102,
);
const PCMU: (&str, u32, u16, &str, u8) = ("audio/PCMU", 8_000, 1, "", 0);
const OPUS: (&str, u32, u16, &str, u8) =
    ("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1", 111);

fn engine(
    video: &[(&str, u32, u16, &str, u8)],
    audio: &[(&str, u32, u16, &str, u8)],
) -> MediaEngine {
    let mut media_engine = MediaEngine::default();
    for (list, kind) in [(video, RtpCodecKind::Video), (audio, RtpCodecKind::Audio)] {
        for &(mime, clock, channels, fmtp, pt) in list {
            media_engine
                .register_codec(codec(mime, clock, channels, fmtp, pt), kind)
                .expect("codec");
        }
    }
    media_engine
}

// ---------------------------------------------------------------------------------------------
// SDP as the document describes it

/// One media section: its `m=` line's fields and its attribute lines.
struct Section {
    media: String,
    port: String,
    formats: Vec<String>,
    lines: Vec<String>,
}

impl Section {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("a={name}")))
    }

    fn direction(&self) -> &str {
        ["sendrecv", "sendonly", "recvonly", "inactive"]
            .into_iter()
            .find(|d| self.lines.iter().any(|l| l == &format!("a={d}")))
            .unwrap_or("sendrecv")
    }

    fn mid(&self) -> String {
        self.attribute("mid:").unwrap_or_default().to_owned()
    }

    fn msid(&self) -> Option<(String, String)> {
        let value = self.attribute("msid:")?;
        let (stream, track) = value.split_once(' ')?;
        Some((stream.to_owned(), track.to_owned()))
    }

    /// Each format's encoding name (lowercase) and its fmtp.
    fn codecs(&self) -> Vec<(String, String)> {
        self.formats
            .iter()
            .map(|pt| {
                let name = self
                    .attribute(&format!("rtpmap:{pt} "))
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let fmtp = self
                    .attribute(&format!("fmtp:{pt} "))
                    .unwrap_or_default()
                    .to_owned();
                (name, fmtp)
            })
            .collect()
    }
}

fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let fields: Vec<&str> = m.split(' ').collect();
            out.push(Section {
                media: fields[0].to_owned(),
                port: fields.get(1).copied().unwrap_or_default().to_owned(),
                formats: fields.iter().skip(3).map(|f| (*f).to_owned()).collect(),
                lines: Vec::new(),
            });
        } else if let Some(section) = out.last_mut() {
            section.lines.push(line.to_owned());
        }
    }
    out
}

/// The rules every SDP of the server follows (Trickle ICE; Media).
fn check_server_sdp(sdp: &str, server: &ServerHandle, what: &str) {
    assert!(
        sdp.lines().any(|l| l == "a=ice-lite"),
        "{what}: not ICE-lite:\n{sdp}"
    );
    let candidates: BTreeSet<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .collect();
    let fields: Vec<Vec<&str>> = candidates.iter().map(|c| c.split(' ').collect()).collect();
    assert!(
        fields.iter().all(|f| f[1] == "1"),
        "{what}: only component-1 candidates (RTCP is muxed):\n{sdp}"
    );
    let udp: Vec<&Vec<&str>> = fields
        .iter()
        .filter(|f| f[2].eq_ignore_ascii_case("udp"))
        .collect();
    let tcp: Vec<&Vec<&str>> = fields
        .iter()
        .filter(|f| f[2].eq_ignore_ascii_case("tcp"))
        .collect();
    let announced = server.announced_rtc_addr();
    assert_eq!(udp.len(), 1, "{what}: one UDP candidate:\n{sdp}");
    assert_eq!(
        (udp[0][4], udp[0][5]),
        (
            announced.ip().to_string().as_str(),
            announced.port().to_string().as_str()
        ),
        "{what}: the UDP candidate is the announced address"
    );
    assert_eq!(
        tcp.len(),
        usize::from(server.rtc_tcp_addr().is_some()),
        "{what}: one passive TCP candidate while ICE-TCP is on:\n{sdp}"
    );
    assert!(tcp
        .iter()
        .all(|f| f.windows(2).any(|w| w == ["tcptype", "passive"])));
    assert_eq!(fields.len(), udp.len() + tcp.len(), "{what}: {sdp}");
    for section in sections(sdp) {
        if section.port == "0" || section.media == "application" {
            continue;
        }
        assert!(
            section.lines.iter().any(|l| l == "a=rtcp-mux"),
            "{what}: RTCP muxed"
        );
        check_codecs(&section, what);
    }
}

/// The codecs of an accepted audio or video section: Opus, or H.264 constrained baseline in
/// packetization mode 1 with its repair formats.
fn check_codecs(section: &Section, what: &str) {
    let codecs = section.codecs();
    match section.media.as_str() {
        "audio" => assert!(
            !codecs.is_empty() && codecs.iter().all(|(name, _)| name == "opus/48000/2"),
            "{what}: audio is Opus only: {codecs:?}"
        ),
        "video" => {
            let (primary, repair): (Vec<_>, Vec<_>) = codecs.iter().partition(|(name, _)| {
                !name.starts_with("rtx/") && !name.starts_with("flexfec-03/")
            });
            assert!(!primary.is_empty(), "{what}: a video codec: {codecs:?}");
            for (name, fmtp) in primary {
                assert_eq!(
                    name, "h264/90000",
                    "{what}: video is H.264 only: {codecs:?}"
                );
                assert!(
                    aula_server::sfu::is_carried_h264(fmtp),
                    "{what}: constrained baseline, packetization mode 1: {fmtp}"
                );
            }
            assert!(repair.len() <= 2, "{what}: {codecs:?}");
        }
        _ => {}
    }
}

/// Tracks by sid: their publisher's id and their kind.
type Tracks = BTreeMap<String, (String, &'static str)>;

/// The rules of a subscriber offer (Subscribing): sections of live tracks `sendonly` with the
/// publisher's id and the track's sid in `a=msid`; sections of ended tracks `inactive`. An
/// offer may still forward a track in `ending` (one made before the track ended: changes fold
/// into the next offer). Returns the sections forwarding live tracks by mid, and how many
/// still forward an ending one.
fn check_subscriber_offer(
    sdp: &str,
    server: &ServerHandle,
    live: &Tracks,
    ending: &Tracks,
) -> (BTreeMap<String, (String, String)>, usize) {
    check_server_sdp(sdp, server, "subscriber_offer");
    let mut by_mid = BTreeMap::new();
    let mut still_ending = 0;
    for section in sections(sdp) {
        if section.media == "application" {
            continue;
        }
        match section.msid() {
            Some((participant, track)) if section.direction() == "sendonly" => {
                let (publisher, kind) = match (live.get(&track), ending.get(&track)) {
                    (Some(found), _) => found,
                    (None, Some(found)) => {
                        still_ending += 1;
                        found
                    }
                    _ => panic!("subscriber_offer forwards {track}, which is not live:\n{sdp}"),
                };
                assert_eq!(&participant, publisher, "a=msid names the publisher");
                assert_eq!(section.media, *kind, "{track} in a section of its kind");
                if live.contains_key(&track) {
                    by_mid.insert(section.mid(), (participant, track));
                }
            }
            _ => assert_eq!(
                section.direction(),
                "inactive",
                "a section without a live track is inactive:\n{sdp}"
            ),
        }
    }
    (by_mid, still_ending)
}

/// Answers subscriber offers, each checked, until one forwards every live track and none that
/// ended. Returns that offer's live sections by mid and its SDP.
async fn answer_offers_until_current(
    client: &mut WireClient,
    subscriber: &Peer,
    doc: &Documented,
    server: &ServerHandle,
    live: &Tracks,
    ending: &Tracks,
) -> (BTreeMap<String, (String, String)>, String) {
    loop {
        let offer = client.next_type("subscriber_offer").await;
        let sdp = offer["sdp"].as_str().expect("sdp").to_owned();
        let (sections, still_ending) = check_subscriber_offer(&sdp, server, live, ending);
        let mut answer = doc.client_example("subscriber_answer", 0);
        answer.insert("sdp".into(), json!(subscriber.answer(&sdp).await));
        let id = client.send(answer).await;
        assert_eq!(client.reply_to(id).await["type"], "ok");
        if still_ending == 0 && sections.len() == live.len() {
            return (sections, sdp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test

/// A token as a backend may mint it: without `grants` (the role's defaults apply).
fn token_without_grants(room: &str, identity: &str, role: &str) -> String {
    let now = aula_protocol::token::unix_now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(DEV_API_KEY.to_owned());
    let claims = json!({
        "iss": DEV_API_KEY, "sub": identity, "room": room, "role": role,
        "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_API_SECRET.as_bytes()),
    )
    .expect("a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_as_docs_protocol_md_says() {
    let _suite = support::shared().await;
    support::init_test_log();
    let doc = Documented::read();
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let room = "doc";

    // A room that already has tracks: an Aula participant publishing a camera and a microphone,
    // and one who watches (to know when the tracks are there).
    let (publisher, _p_events) = support::join(&server, room, "p1", Role::Teacher).await;
    let (watcher, mut w_events) = support::join(&server, room, "w1", Role::Student).await;
    support::publish_camera(&publisher, 320, 180, 15).await;
    publisher
        .publish_audio(SyntheticAudioSource::new(440.0), "mic")
        .await
        .expect("audio publishes");
    let mut live: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    let publisher_id = publisher.local_participant().id.to_string();
    let mut camera_sid = None;
    tokio::time::timeout(Duration::from_secs(20), async {
        while live.len() < 2 {
            if let Some(RoomEvent::TrackPublished { track, .. }) = w_events.recv().await {
                let kind = if track.kind == aula_protocol::MediaKind::Audio {
                    "audio"
                } else {
                    camera_sid = Some(track.sid.clone());
                    "video"
                };
                live.insert(track.sid.to_string(), (publisher_id.clone(), kind));
            }
        }
    })
    .await
    .expect("the publisher's tracks start");
    let camera_sid = camera_sid.expect("a camera");
    let camera = camera_sid.to_string();

    // A client on the raw wire joins with the document's `join`, its token without grants.
    let mut client = WireClient::connect(&server).await;
    let mut join = doc.client_example("join", 0);
    join.insert("room".into(), json!(room));
    join.insert(
        "token".into(),
        json!(token_without_grants(room, "c1", "student")),
    );
    let join_id = client.send(join).await;
    let first = client.read_one().await;
    assert_eq!(first["type"], "joined", "joined comes first: {first}");
    assert_eq!(first["request_id"], json!(join_id));
    client.unread.clear();
    let me = first["participant"]["id"]
        .as_str()
        .expect("my id")
        .to_owned();
    let others: BTreeSet<&str> = first["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(others.contains(publisher_id.as_str()));

    // The first subscriber offer comes after joined (which was the very first message); the
    // room's tracks come in it or, if the server was still adding them, in the offers after.
    let none = Tracks::new();
    let subscriber = Peer::new({
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().expect("codecs");
        media_engine
    })
    .await;
    let (first_sections, _) =
        answer_offers_until_current(&mut client, &subscriber, &doc, &server, &live, &none).await;

    // Publishing as the document shows, from an offer that prefers VP8 and PCMU. The grants
    // the token left out are the student's: camera and microphone.
    let mut publish = doc.client_example("publish_track", 0);
    let id = client.send(publish.clone()).await;
    let published = client.reply_to(id).await;
    assert_eq!(published["type"], "track_published", "{published}");
    let my_camera = published["track"]["sid"].as_str().expect("sid").to_owned();
    let mut simulcast = doc.client_example("publish_track", 1);
    simulcast.insert("cid".into(), json!("video-2"));
    let id = client.send(simulcast).await;
    let published = client.reply_to(id).await;
    assert_eq!(published["type"], "track_published", "{published}");
    let my_simulcast = published["track"]["sid"].as_str().expect("sid").to_owned();
    publish.insert("source".into(), json!("screen_share"));
    publish.insert("cid".into(), json!("screen-1"));
    let id = client.send(publish).await;
    let refused = client.reply_to(id).await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("permission_denied")),
        "a student's default grants do not include screen sharing: {refused}"
    );

    let publishing = Peer::new(engine(&[VP8, H264_BASELINE_CB], &[PCMU, OPUS])).await;
    publishing.send_only(RtpCodecKind::Video, Vec::new()).await;
    publishing.send_only(RtpCodecKind::Audio, Vec::new()).await;
    let publisher_offer_sdp = publishing.offer().await;
    let video = sections(&publisher_offer_sdp);
    assert_eq!(video[0].codecs()[0].0, "vp8/90000", "the offer prefers VP8");
    assert!(video[1].codecs()[0].0.starts_with("pcmu/"), "and PCMU");
    let mut publisher_offer = doc.client_example("publisher_offer", 0);
    publisher_offer.insert("sdp".into(), json!(publisher_offer_sdp));
    let id = client.send(publisher_offer).await;
    let answer = client.reply_to(id).await;
    assert_eq!(answer["type"], "publisher_answer", "{answer}");
    let answer_sdp = answer["sdp"].as_str().expect("sdp");
    check_server_sdp(answer_sdp, &server, "publisher_answer");
    let answered = sections(answer_sdp);
    assert!(
        answered.iter().all(|s| s.port != "0"),
        "both sections accepted:\n{answer_sdp}"
    );
    publishing.apply_answer(answer_sdp).await;

    // The document's other requests, as written.
    let mut mute = doc.client_example("set_track_muted", 0);
    mute.insert("sid".into(), json!(my_camera));
    let id = client.send(mute).await;
    assert_eq!(client.reply_to(id).await["type"], "ok");
    let mut layers = doc.client_example("layers_active", 0);
    layers.insert("sid".into(), json!(my_simulcast));
    client.send(layers).await;
    let id = client.send(doc.client_example("ping", 0)).await;
    assert_eq!(client.reply_to(id).await["type"], "pong");
    let errors: Vec<&Value> = client
        .received
        .iter()
        .filter(|m| m["type"] == "error")
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "only the screen share was refused: {errors:?}"
    );

    // Others' events: the publisher mutes; someone joins and publishes audio.
    publisher
        .set_track_muted(&camera_sid, true)
        .await
        .expect("mute");
    let muted = client.next_type("track_muted").await;
    assert_eq!(muted["track_sid"], json!(camera));
    let (late, _late_events) = support::join(&server, room, "l1", Role::Student).await;
    let late_id = late.local_participant().id.to_string();
    late.publish_audio(SyntheticAudioSource::new(660.0), "mic")
        .await
        .expect("audio publishes");
    let joined = client.next_type("participant_joined").await;
    assert_eq!(joined["participant"]["id"], json!(late_id));
    let added = client.next_type("track_added").await;
    let late_mic = added["track"]["sid"].as_str().expect("sid").to_owned();
    live.insert(late_mic.clone(), (late_id.clone(), "audio"));
    answer_offers_until_current(&mut client, &subscriber, &doc, &server, &live, &none).await;

    // The publisher leaves: track_removed for each of its tracks, then participant_left; its
    // sections turn inactive.
    publisher.disconnect().await;
    let mut removed = BTreeSet::new();
    let left = loop {
        let message = client
            .next_of("track_removed or participant_left", |m| {
                m["type"] == "track_removed" || m["type"] == "participant_left"
            })
            .await;
        if message["type"] == "participant_left" {
            break message;
        }
        assert_eq!(message["participant_id"], json!(publisher_id));
        removed.insert(message["track_sid"].as_str().expect("sid").to_owned());
    };
    assert_eq!(left["participant_id"], json!(publisher_id));
    let publishers_tracks: BTreeSet<String> = live
        .iter()
        .filter(|(_, (p, _))| *p == publisher_id)
        .map(|(sid, _)| sid.clone())
        .collect();
    assert_eq!(
        removed, publishers_tracks,
        "a track_removed for each track, before participant_left"
    );
    let ended: Tracks = live
        .iter()
        .filter(|(_, (p, _))| *p == publisher_id)
        .map(|(sid, origin)| (sid.clone(), origin.clone()))
        .collect();
    live.retain(|_, (p, _)| *p != publisher_id);
    // (Each removal renegotiates; the offers fold what changed while one was unanswered. Answer
    // until no section forwards an ended track.)
    let ended_video_mid = loop {
        let offer = client.next_type("subscriber_offer").await;
        let offer_sdp = offer["sdp"].as_str().expect("sdp").to_owned();
        let (_, still_ending) = check_subscriber_offer(&offer_sdp, &server, &live, &ended);
        let mut answer = doc.client_example("subscriber_answer", 0);
        answer.insert("sdp".into(), json!(subscriber.answer(&offer_sdp).await));
        let id = client.send(answer).await;
        assert_eq!(client.reply_to(id).await["type"], "ok");
        if still_ending == 0 {
            let video_mid = first_sections
                .iter()
                .find(|(_, (_, track))| track == &camera)
                .map(|(mid, _)| mid.clone())
                .expect("the camera had a section");
            let ended = sections(&offer_sdp)
                .into_iter()
                .find(|s| s.mid() == video_mid)
                .expect("sections are never deleted");
            assert_eq!(ended.direction(), "inactive");
            break video_mid;
        }
    };

    // A new video track takes the ended video section over.
    support::publish_camera(&late, 320, 180, 15).await;
    let added = client.next_type("track_added").await;
    let late_camera = added["track"]["sid"].as_str().expect("sid").to_owned();
    live.insert(late_camera.clone(), (late_id.clone(), "video"));
    let reused = loop {
        let offer = client.next_type("subscriber_offer").await;
        let offer_sdp = offer["sdp"].as_str().expect("sdp").to_owned();
        let (live_sections, _) = check_subscriber_offer(&offer_sdp, &server, &live, &none);
        let mut answer = doc.client_example("subscriber_answer", 0);
        answer.insert("sdp".into(), json!(subscriber.answer(&offer_sdp).await));
        let id = client.send(answer).await;
        assert_eq!(client.reply_to(id).await["type"], "ok");
        if let Some((mid, _)) = live_sections.iter().find(|(_, (_, t))| t == &late_camera) {
            break mid.clone();
        }
    };
    assert_eq!(
        reused, ended_video_mid,
        "the new camera reuses the ended video section"
    );

    // Offers the room cannot carry: H.264 High profile only, VP8 only. Both sections are
    // rejected; the Opus section is taken.
    let mut other = WireClient::connect(&server).await;
    let mut join = doc.client_example("join", 0);
    join.insert("room".into(), json!(room));
    join.insert(
        "token".into(),
        json!(support::token(room, "c2", Role::Student)),
    );
    join.insert("auto_subscribe".into(), json!(false));
    let id = other.send(join).await;
    assert_eq!(other.reply_to(id).await["type"], "joined");
    let rejecting = Peer::new(engine(&[H264_HIGH, VP8], &[OPUS])).await;
    let h264_high = codec(
        H264_HIGH.0,
        H264_HIGH.1,
        H264_HIGH.2,
        H264_HIGH.3,
        H264_HIGH.4,
    );
    let vp8 = codec(VP8.0, VP8.1, VP8.2, VP8.3, VP8.4);
    rejecting
        .send_only(RtpCodecKind::Video, vec![h264_high])
        .await;
    rejecting.send_only(RtpCodecKind::Video, vec![vp8]).await;
    rejecting.send_only(RtpCodecKind::Audio, Vec::new()).await;
    let mut publisher_offer = doc.client_example("publisher_offer", 0);
    publisher_offer.insert("sdp".into(), json!(rejecting.offer().await));
    let id = other.send(publisher_offer).await;
    let answer = other.reply_to(id).await;
    assert_eq!(answer["type"], "publisher_answer", "{answer}");
    let answer_sdp = answer["sdp"].as_str().expect("sdp");
    check_server_sdp(answer_sdp, &server, "publisher_answer");
    let ports: Vec<(String, String)> = sections(answer_sdp)
        .into_iter()
        .map(|s| (s.media, s.port))
        .collect();
    assert_eq!(
        ports[0],
        ("video".to_owned(), "0".to_owned()),
        "{answer_sdp}"
    );
    assert_eq!(
        ports[1],
        ("video".to_owned(), "0".to_owned()),
        "{answer_sdp}"
    );
    assert_eq!(ports[2].0, "audio");
    assert_ne!(ports[2].1, "0", "{answer_sdp}");

    // Every message the server sent is as the document shows it, and the document's server
    // examples were all seen on the wire (so none describes a message the server no longer sends).
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for message in client.received.iter().chain(&other.received) {
        seen.insert(message["type"].as_str().unwrap_or_default().to_owned());
        errors.extend(doc.check_server_message(message));
    }
    errors.dedup();
    assert!(
        errors.is_empty(),
        "the wire differs from docs/protocol.md:\n{}",
        errors.join("\n")
    );
    for ty in [
        "joined",
        "subscriber_offer",
        "ok",
        "pong",
        "error",
        "track_published",
        "publisher_answer",
        "track_muted",
        "participant_joined",
        "track_added",
        "track_removed",
        "participant_left",
    ] {
        assert!(seen.contains(ty), "no {ty} was seen; seen: {seen:?}");
    }
    let _ = me;

    watcher.disconnect().await;
    late.disconnect().await;
    server.shutdown().await;
}
