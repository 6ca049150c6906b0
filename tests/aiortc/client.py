"""An Aula participant on aiortc, written from docs/protocol.md alone.

It joins a room over the signaling WebSocket, answers the server's subscriber offers and
decodes what it receives, mapping media to the participant and track it comes from by the
`a=msid` of its section in the latest offer. With `--publish FRAMES_IN` it also publishes a
video track (frames read from a file, looped) and an audio tone on its publisher connection.
Its offer is a standards-following one that prefers other codecs: VP8 before H.264 (aiortc's
default order) and PCMU before Opus (set with setCodecPreferences); the server must answer
H.264 and Opus.

Usage: client.py WS_URL ROOM TOKEN OUT_DIR [--publish FRAMES_IN]

It stays in the room until it reads `leave` (or the end of input) on stdin. Meanwhile it writes
one JSON event a line on stdout: `joined`, `answered` (each subscriber offer answered, with its
sections), `connected` (the subscriber connection is up) and `decoded` (progress per received
track: at the first frame and every tenth, at every half second of audio). The last line is
the summary (`"event": "summary"`).

FRAMES_IN holds the frames to send: a header of three little-endian u32 (width, height, count)
and then `count` I420 frames. For each track received, OUT_DIR receives `video-<sid>.i420` (the
same layout: the last decoded frames of that size) or `audio-<sid>.s16` (its last seconds of
decoded audio, mono, 48 kHz, little-endian).

With AIORTC_DEBUG set in the environment, aiortc's debug log and every RTP packet that no
receiver takes go to stderr (the test's client.log): what to read when media does not arrive.

The server is ICE-lite on loopback and puts its candidates in its SDP, so no ICE servers are
configured (aiortc would otherwise use a public STUN server) and no candidates are trickled.
"""

import asyncio
import fractions
import json
import math
import os
import struct
import sys
import time

import av
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

PROTOCOL_VERSION = 1
VIDEO_CLOCK = 90_000
FPS = 15
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
TONE_HZ = 660.0
KEEP_FRAMES = 30
KEEP_AUDIO_SECONDS = 3


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def read_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    width, height, count = struct.unpack_from("<III", data, 0)
    size = width * height * 3 // 2
    frames = [data[12 + i * size : 12 + (i + 1) * size] for i in range(count)]
    return width, height, frames


def fill_plane(plane, data, width, height):
    """Copies tightly packed rows into a plane whose rows may be padded."""
    stride = plane.line_size
    if stride == width:
        plane.update(data)
        return
    padded = bytearray(stride * height)
    for row in range(height):
        padded[row * stride : row * stride + width] = data[row * width : (row + 1) * width]
    plane.update(bytes(padded))


def plane_bytes(plane, width, height):
    """The rows of a plane without their padding."""
    raw = bytes(plane)
    stride = plane.line_size
    return b"".join(raw[row * stride : row * stride + width] for row in range(height))


class LoopedVideo(MediaStreamTrack):
    """Sends the given I420 frames in a loop at FPS."""

    kind = "video"

    def __init__(self, width, height, frames):
        super().__init__()
        self.width, self.height, self.frames = width, height, frames
        self.index = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.index / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        data = self.frames[self.index % len(self.frames)]
        w, h = self.width, self.height
        frame = av.VideoFrame(w, h, "yuv420p")
        y, u = w * h, w * h // 4
        fill_plane(frame.planes[0], data[:y], w, h)
        fill_plane(frame.planes[1], data[y : y + u], w // 2, h // 2)
        fill_plane(frame.planes[2], data[y + u :], w // 2, h // 2)
        frame.pts = self.index * VIDEO_CLOCK // FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.index += 1
        return frame


class Tone(MediaStreamTrack):
    """A sine tone, 20 ms frames, stereo s16 at 48 kHz."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.sample = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sample / AUDIO_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        samples = []
        for i in range(AUDIO_SAMPLES):
            value = int(8000 * math.sin(2 * math.pi * TONE_HZ * (self.sample + i) / AUDIO_RATE))
            samples += [value, value]
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_SAMPLES)
        frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.sample
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.sample += AUDIO_SAMPLES
        return frame


def sections(sdp):
    """The SDP's media sections as lists of lines, the session part left out."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def attribute(section, name):
    """The value of the section's first `a=<name>:` line, or None."""
    prefix = f"a={name}:"
    return next((line[len(prefix) :] for line in section if line.startswith(prefix)), None)


def ssrcs_of(section):
    """`(media SSRC, RTX SSRC or None)` the section announces, or None without `a=ssrc`."""
    group = attribute(section, "ssrc-group")
    if group is not None and group.startswith("FID "):
        media, rtx = (int(ssrc) for ssrc in group.split()[1:3])
        return media, rtx
    first = attribute(section, "ssrc")
    return (int(first.split()[0]), None) if first else None


def direction_of(section):
    directions = ("sendrecv", "sendonly", "recvonly", "inactive")
    return next((line[2:] for line in section if line[2:] in directions), "sendrecv")


def describe_offer(sdp):
    """Each section of an offer as `[mid, kind, direction, participant id, track sid]` (the
    last two from its a=msid, None without one)."""
    described = []
    for section in sections(sdp):
        msid = attribute(section, "msid")
        stream, _, track = msid.partition(" ") if msid else (None, None, None)
        kind = section[0].split(" ")[0][2:]
        described.append([attribute(section, "mid"), kind, direction_of(section), stream, track])
    return described


def codec_names(section):
    """Encoding names of a section's formats, in the section's order."""
    formats = section[0].split(" ")[3:]
    names = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            pt, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            names[pt] = encoding.split("/")[0]
    return [names.get(pt, pt) for pt in formats]


class Received:
    """What was decoded from one forwarded track."""

    def __init__(self, kind, origin):
        self.kind, self.origin = kind, origin
        self.frames, self.size, self.samples = 0, None, 0
        self.video = []
        self.audio = bytearray()

    def summary(self):
        return {
            "kind": self.kind,
            "from": self.origin,
            "frames": self.frames,
            "size": self.size,
            "samples": self.samples,
        }


class Client:
    def __init__(self, url, room, token, out_dir, frames_path=None):
        self.url, self.room, self.token = url, room, token
        self.frames_path, self.out_dir = frames_path, out_dir
        self.next_id = 1
        self.pending = {}
        self.subscriber = None
        self.publisher = None
        # mid -> (participant id, track sid) of the forwarded track, from the latest offer.
        self.origins = {}
        # mid -> (media SSRC, RTX SSRC) the section announced last.
        self.announced = {}
        self.offers_answered = 0
        self.summary = {
            "event": "summary",
            "first_message": None,
            "received_from": [],
            "errors": [],
        }
        self.received = {}  # track sid -> Received
        self.receivers = []
        self.offers = asyncio.Queue()

    def emit(self, event):
        print(json.dumps(event), flush=True)

    async def request(self, msg):
        msg = dict(msg, id=self.next_id)
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[msg["id"]] = future
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(future, 10)
        if reply["type"] == "error":
            raise RuntimeError(f"{msg['type']} refused: {reply['code']}: {reply['message']}")
        return reply

    async def read(self):
        async for frame in self.ws:
            if isinstance(frame, bytes):
                continue  # the whiteboard's binary frames; this client has no board
            msg = json.loads(frame)
            if self.summary["first_message"] is None:
                self.summary["first_message"] = msg["type"]
            if "request_id" in msg and msg["request_id"] in self.pending:
                self.pending.pop(msg["request_id"]).set_result(msg)
            elif msg["type"] == "subscriber_offer":
                # The server sends no offer before the last one is answered; answer in order.
                self.offers.put_nowait(msg["sdp"])
            elif msg["type"] == "error":
                # Unprompted errors are failures too (the summary's errors, which the test checks).
                log("server error:", msg)
                self.summary["errors"].append(f"server: {msg}")

    async def answer_offers(self):
        try:
            while True:
                await self.answer_subscriber(await self.offers.get())
        except Exception as err:  # reported in the summary, which the test checks
            self.summary["errors"].append(f"subscriber: {err!r}")
            raise

    async def answer_subscriber(self, sdp):
        if self.subscriber is None:
            self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @self.subscriber.on("track")
            def on_track(track):
                self.receivers.append(asyncio.ensure_future(self.consume(track)))

            @self.subscriber.on("connectionstatechange")
            def on_state():
                if self.subscriber.connectionState == "connected":
                    self.emit({"event": "connected"})

        described = describe_offer(sdp)
        self.origins = {mid: (p, t) for mid, _, _, p, t in described if t is not None}
        await self.subscriber.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
        self.follow_ssrcs(sdp)
        answer = self.subscriber.localDescription.sdp
        await self.request({"type": "subscriber_answer", "sdp": answer})
        self.offers_answered += 1
        # Kept for whoever reads a failure.
        for name, text in (("offer", sdp), ("answer", answer)):
            with open(os.path.join(self.out_dir, f"{name}-{self.offers_answered}.sdp"), "w") as f:
                f.write(text)
        self.emit({"event": "answered", "offer": self.offers_answered, "sections": described})

    def follow_ssrcs(self, sdp):
        """Routes the SSRCs each receiving section announces now to its receiver.

        A section taken over by the next track of its kind (docs/protocol.md) announces that
        track's SSRCs, and a receiver routes RTP by the SSRCs of the latest description
        (RFC 8843, section 9.2). aiortc 1.16 reads a section's SSRCs only when the section
        first starts receiving: packets on the new SSRCs would match no receiver (the payload
        type is shared by every section of the kind) and be dropped. So its RTP router and the
        receiver's RTX map are told here, which is what aiortc lacks. A section's first SSRCs
        are left to aiortc (it registers them with the section's payload types).
        """
        by_mid = {attribute(section, "mid"): section for section in sections(sdp)}
        for transceiver in self.subscriber.getTransceivers():
            section = by_mid.get(transceiver.mid)
            if section is None or direction_of(section) not in ("sendonly", "sendrecv"):
                continue
            announced = ssrcs_of(section)
            if announced is None:
                continue
            before = self.announced.get(transceiver.mid)
            self.announced[transceiver.mid] = announced
            if before is None or before == announced:
                continue
            media, rtx = announced
            log(f"section {transceiver.mid} taken over: SSRC {before} -> {announced}")
            receiver = transceiver.receiver
            receiver.transport._rtp_router.register_receiver(
                receiver, ssrcs=[s for s in announced if s is not None], payload_types=[]
            )
            if rtx is not None:
                receiver._RTCRtpReceiver__rtx_ssrc[rtx] = media

    def mid_of(self, track):
        for transceiver in self.subscriber.getTransceivers():
            if transceiver.receiver.track is track:
                return transceiver.mid
        return None

    async def consume(self, track):
        try:
            await self.decode(track)
        except Exception as err:  # reported in the summary, which the test checks
            self.summary["errors"].append(f"{track.kind}: {err!r}")
            raise

    def received_for(self, kind, origin):
        """Where a frame goes: the track its section carries now (a section is reused by the
        next track of its kind once its track ended)."""
        if origin is None:
            return None
        _, sid = origin
        if sid not in self.received:
            self.received[sid] = Received(kind, origin[0])
            self.summary["received_from"].append([kind, list(origin)])
        return self.received[sid]

    async def decode(self, track):
        mid = self.mid_of(track)
        to_mono = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track ended
                return
            origin = self.origins.get(mid)
            received = self.received_for(track.kind, origin)
            if received is None:
                continue
            if track.kind == "video":
                frame = frame.reformat(format="yuv420p")
                w, h = frame.width, frame.height
                data = (
                    plane_bytes(frame.planes[0], w, h)
                    + plane_bytes(frame.planes[1], w // 2, h // 2)
                    + plane_bytes(frame.planes[2], w // 2, h // 2)
                )
                received.frames += 1
                received.size = [w, h]
                received.video.append((w, h, data))
                del received.video[:-KEEP_FRAMES]
                if received.frames == 1 or received.frames % 10 == 0:
                    self.emit_progress(origin, received)
            else:
                before = received.samples // (AUDIO_RATE // 2)
                for mono in to_mono.resample(frame):
                    received.samples += mono.samples
                    received.audio += bytes(mono.planes[0])[: mono.samples * 2]
                keep = KEEP_AUDIO_SECONDS * AUDIO_RATE * 2
                del received.audio[: max(0, len(received.audio) - keep)]
                if received.samples // (AUDIO_RATE // 2) > before:
                    self.emit_progress(origin, received)

    def emit_progress(self, origin, received):
        self.emit(
            {
                "event": "decoded",
                "from": origin[0],
                "sid": origin[1],
                "kind": received.kind,
                "frames": received.frames,
                "size": received.size,
                "samples": received.samples,
            }
        )

    async def publish(self):
        width, height, frames = read_frames(self.frames_path)
        video, audio = LoopedVideo(width, height, frames), Tone()
        publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.publisher = publisher
        # Announce each track before it appears in an offer; cid is the WebRTC track id.
        video_info = await self.request(
            {
                "type": "publish_track",
                "cid": video.id,
                "source": "camera",
                "name": "camera",
                "width": width,
                "height": height,
            }
        )
        audio_info = await self.request(
            {"type": "publish_track", "cid": audio.id, "source": "microphone", "name": "mic"}
        )
        publisher.addTransceiver(video, direction="sendonly")
        audio_transceiver = publisher.addTransceiver(audio, direction="sendonly")
        # A client that prefers PCMU: the server must still answer Opus.
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        audio_transceiver.setCodecPreferences(
            [c for c in capabilities if c.mimeType == "audio/PCMU"]
            + [c for c in capabilities if c.mimeType != "audio/PCMU"]
        )
        await publisher.setLocalDescription(await publisher.createOffer())
        offer = publisher.localDescription.sdp
        answer = await self.request({"type": "publisher_offer", "sdp": offer})
        await publisher.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        offered = {s[0].split(" ")[0][2:]: codec_names(s) for s in sections(offer)}
        answered = {s[0].split(" ")[0][2:]: codec_names(s) for s in sections(answer["sdp"])}
        self.summary["offered"] = offered
        self.summary["answered"] = answered
        self.summary["published"] = {
            "video": video_info["track"]["sid"],
            "audio": audio_info["track"]["sid"],
        }

    async def run(self):
        async with websockets.connect(self.url) as ws:
            self.ws = ws
            reader = asyncio.ensure_future(self.read())
            reader.add_done_callback(
                lambda task: (
                    task.cancelled()
                    or task.exception() is None
                    or self.summary["errors"].append(f"signaling: {task.exception()!r}")
                )
            )
            answerer = asyncio.ensure_future(self.answer_offers())
            joined = await self.request(
                {
                    "type": "join",
                    "protocol_version": PROTOCOL_VERSION,
                    "room": self.room,
                    "token": self.token,
                    "auto_subscribe": True,
                }
            )
            self.summary["me"] = joined["participant"]["id"]
            self.summary["others"] = [p["id"] for p in joined["participants"]]
            self.emit({"event": "joined", "me": self.summary["me"]})
            if self.frames_path is not None:
                await self.publish()
            loop = asyncio.get_running_loop()
            while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in (
                "leave",
                "",
            ):
                pass
            self.summary["offers_answered"] = self.offers_answered
            await self.request({"type": "leave"})
            reader.cancel()
            answerer.cancel()
        for task in self.receivers:
            task.cancel()
        if self.publisher is not None:
            await self.publisher.close()
        if self.subscriber is not None:
            await self.subscriber.close()
        self.summary["tracks"] = {sid: r.summary() for sid, r in self.received.items()}
        self.write_media()

    def write_media(self):
        for sid, received in self.received.items():
            if received.kind == "video":
                last = received.video[-1][:2] if received.video else (0, 0)
                same = [v for v in received.video if v[:2] == last]
                with open(os.path.join(self.out_dir, f"video-{sid}.i420"), "wb") as f:
                    f.write(struct.pack("<III", last[0], last[1], len(same)))
                    f.writelines(data for _, _, data in same)
            else:
                with open(os.path.join(self.out_dir, f"audio-{sid}.s16"), "wb") as f:
                    f.write(received.audio)


def main():
    if os.environ.get("AIORTC_DEBUG"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)d %(name)s %(message)s")
        from aiortc import rtcdtlstransport

        route = rtcdtlstransport.RtpRouter.route_rtp

        def logged_route(self, packet):
            receiver = route(self, packet)
            if receiver is None:
                log(f"unrouted ssrc={packet.ssrc} pt={packet.payload_type} seq={packet.sequence_number}")
            return receiver

        rtcdtlstransport.RtpRouter.route_rtp = logged_route
    url, room, token, out_dir = sys.argv[1:5]
    options = sys.argv[5:]
    frames_path = None
    if options[:1] == ["--publish"] and len(options) == 2:
        frames_path = options[1]
    elif options:
        sys.exit(__doc__)
    client = Client(url, room, token, out_dir, frames_path)
    asyncio.run(client.run())
    print(json.dumps(client.summary), flush=True)


if __name__ == "__main__":
    main()
