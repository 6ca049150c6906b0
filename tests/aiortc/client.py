"""An Aula participant on aiortc, written from docs/protocol.md alone.

It joins a room over the signaling WebSocket, answers the server's subscriber offers, publishes
a video track (frames read from a file, looped) and an audio tone on its publisher connection,
and decodes what it receives. Its offer is a standards-following one that prefers other codecs:
VP8 before H.264 (aiortc's default order) and PCMU before Opus (set with setCodecPreferences);
the server must answer H.264 and Opus.

Usage: client.py WS_URL ROOM TOKEN FRAMES_IN OUT_DIR SECONDS

FRAMES_IN holds the frames to send: a header of three little-endian u32 (width, height, count)
and then `count` I420 frames. OUT_DIR receives `video.i420` (the same layout: the last decoded
frames of the first video track received) and `audio.s16` (decoded audio of the first audio
track, mono, 48 kHz, little-endian). The last line on stdout is a JSON summary.

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


def msid_of(sdp, mid):
    """`(participant id, track sid)` of the section with this mid (docs/protocol.md: map media
    by the section's a=msid in the latest offer)."""
    for section in sections(sdp):
        if f"a=mid:{mid}" in section:
            for line in section:
                if line.startswith("a=msid:"):
                    stream, _, track = line[len("a=msid:") :].partition(" ")
                    return stream, track
    return None


def codec_names(section):
    """Encoding names of a section's formats, in the section's order."""
    formats = section[0].split(" ")[3:]
    names = {}
    for line in section:
        if line.startswith("a=rtpmap:"):
            pt, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            names[pt] = encoding.split("/")[0]
    return [names.get(pt, pt) for pt in formats]


class Client:
    def __init__(self, url, room, token, frames_path, out_dir):
        self.url, self.room, self.token = url, room, token
        self.frames_path, self.out_dir = frames_path, out_dir
        self.next_id = 1
        self.pending = {}
        self.subscriber = None
        self.subscriber_sdp = ""
        self.offers_answered = 0
        self.summary = {
            "first_message": None,
            "video_frames": 0,
            "video_size": None,
            "audio_samples": 0,
            "received_from": [],
            "errors": [],
        }
        self.video = []
        self.audio = bytearray()
        self.receivers = []

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
                asyncio.ensure_future(self.answer_subscriber(msg["sdp"]))
            elif msg["type"] == "error":
                log("server error:", msg)

    async def answer_subscriber(self, sdp):
        if self.subscriber is None:
            self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @self.subscriber.on("track")
            def on_track(track):
                self.receivers.append(asyncio.ensure_future(self.consume(track)))

        self.subscriber_sdp = sdp
        await self.subscriber.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
        await self.request(
            {"type": "subscriber_answer", "sdp": self.subscriber.localDescription.sdp}
        )
        self.offers_answered += 1

    def origin(self, track):
        for transceiver in self.subscriber.getTransceivers():
            if transceiver.receiver.track is track:
                return msid_of(self.subscriber_sdp, transceiver.mid)
        return None

    async def consume(self, track):
        try:
            await self.decode(track)
        except Exception as err:  # reported in the summary, which the test checks
            self.summary["errors"].append(f"{track.kind}: {err!r}")
            raise

    async def decode(self, track):
        origin = self.origin(track)
        self.summary["received_from"].append([track.kind, origin])
        first_video = track.kind == "video" and not any(
            kind == "video" for kind, _ in self.summary["received_from"][:-1]
        )
        first_audio = track.kind == "audio" and not any(
            kind == "audio" for kind, _ in self.summary["received_from"][:-1]
        )
        to_mono = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track ended
                return
            if track.kind == "video" and first_video:
                self.summary["video_frames"] += 1
                frame = frame.reformat(format="yuv420p")
                w, h = frame.width, frame.height
                self.summary["video_size"] = [w, h]
                data = (
                    plane_bytes(frame.planes[0], w, h)
                    + plane_bytes(frame.planes[1], w // 2, h // 2)
                    + plane_bytes(frame.planes[2], w // 2, h // 2)
                )
                self.video.append((w, h, data))
                del self.video[:-KEEP_FRAMES]
            elif track.kind == "audio" and first_audio:
                for mono in to_mono.resample(frame):
                    self.summary["audio_samples"] += mono.samples
                    self.audio += bytes(mono.planes[0])[: mono.samples * 2]
                keep = KEEP_AUDIO_SECONDS * AUDIO_RATE * 2
                del self.audio[: max(0, len(self.audio) - keep)]

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

    async def run(self, seconds):
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
            await self.publish()
            await asyncio.sleep(seconds)
            self.summary["offers_answered"] = self.offers_answered
            await self.request({"type": "leave"})
            reader.cancel()
        for task in self.receivers:
            task.cancel()
        await self.publisher.close()
        if self.subscriber is not None:
            await self.subscriber.close()
        self.write_media()

    def write_media(self):
        with open(os.path.join(self.out_dir, "video.i420"), "wb") as f:
            same = [v for v in self.video if self.video and v[:2] == self.video[-1][:2]]
            w, h = same[-1][:2] if same else (0, 0)
            f.write(struct.pack("<III", w, h, len(same)))
            f.writelines(data for _, _, data in same)
        with open(os.path.join(self.out_dir, "audio.s16"), "wb") as f:
            f.write(self.audio)


def main():
    url, room, token, frames_path, out_dir, seconds = sys.argv[1:7]
    client = Client(url, room, token, frames_path, out_dir)
    asyncio.run(client.run(float(seconds)))
    print(json.dumps(client.summary))


if __name__ == "__main__":
    main()
