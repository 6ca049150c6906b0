"""Two participants through a real aula-server: app-supplied stamped frames go in on one side
and come out decoded, with the same stamps, on the other; plus the error cases."""

import threading
import time

import pytest

import aula
from conftest import mint_token

WIDTH, HEIGHT, FPS = 320, 180, 15
STAMP_TIME_MASK = (1 << 48) - 1


def token(room, identity, role=aula.ParticipantRole.STUDENT):
    return mint_token(room, identity, role)


class Collector(aula.VideoFrameSink, aula.AudioFrameSink, aula.RoomListener):
    """Keeps decoded stamps, audio levels and room updates."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stamps = []
        self.sizes = set()
        self.updates = []
        self.audio_samples = 0
        self.audio_peak = 0

    def on_audio_frame(self, participant_id, track_sid, frame):
        with self.lock:
            assert frame.sample_rate == 48_000
            self.audio_samples += len(frame.samples) // frame.channels
            self.audio_peak = max(self.audio_peak, max((abs(s) for s in frame.samples), default=0))

    def on_video_frame(self, participant_id, track_sid, frame):
        with self.lock:
            self.sizes.add((frame.width, frame.height, len(frame.data)))
            if frame.stamp is not None:
                self.stamps.append((frame.stamp.sequence, frame.stamp.capture_time_us))

    def on_update(self, update):
        with self.lock:
            self.updates.append(update)


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_app_frames_arrive_with_their_stamps(server_url):
    options = aula.default_connect_options()
    teacher = aula.connect(server_url, token("py-call", "teacher", aula.ParticipantRole.TEACHER), options)
    student = aula.connect(server_url, token("py-call", "student"), options)
    seen = Collector()
    subscription = student.add_listener(seen)
    student.set_video_sink(seen)
    student.set_audio_sink(seen)
    teacher.publish_synthetic_audio(440.0, "tone")

    publisher = teacher.publish_app_video(WIDTH, HEIGHT, FPS, 300_000, aula.TrackOrigin.CAMERA, "app-camera")
    assert publisher.track().width == WIDTH

    sent = {}
    stop = threading.Event()

    def push_frames():
        sequence = 5000
        while not stop.is_set():
            stamp = aula.Stamp(sequence=sequence, capture_time_us=time.time_ns() // 1000)
            publisher.push_i420(aula.stamped_i420_frame(WIDTH, HEIGHT, stamp), stamp.capture_time_us)
            sent[sequence] = stamp.capture_time_us & STAMP_TIME_MASK
            sequence += 1
            time.sleep(1 / FPS)

    pusher = threading.Thread(target=push_frames)
    pusher.start()
    try:
        assert wait_until(lambda: len(seen.stamps) >= 20, 20), f"only {len(seen.stamps)} stamped frames"
    finally:
        stop.set()
        pusher.join()

    assert wait_until(lambda: seen.audio_samples >= 24_000, 10), f"{seen.audio_samples} audio samples"
    assert seen.audio_peak > 1000, "the tone is audible"
    with seen.lock:
        stamps = list(seen.stamps)
        sizes = set(seen.sizes)
        updates = list(seen.updates)
    # Every stamp read back is one the app pushed, with its capture time intact.
    for sequence, capture in stamps:
        assert sent.get(sequence) == capture, f"stamp {sequence} was not sent as {capture}"
    assert len({s for s, _ in stamps}) >= 10, "frames should be distinct, not one frame repeated"
    assert sizes == {(WIDTH, HEIGHT, WIDTH * HEIGHT * 3 // 2)}
    assert any(u.is_track_published() and u.track.name == "app-camera" for u in updates)

    stats = student.stats()
    video = [r for r in stats.received if r.kind == aula.TrackKind.VIDEO]
    assert video and video[0].frames_stamped_ok >= 20 and video[0].from_identity == "teacher"
    published = teacher.stats().published
    assert any(p.kind == aula.TrackKind.VIDEO and p.frames_sent > 0 for p in published)
    assert publisher.stats().pushed == len(sent)

    # A wrong-sized frame is refused with a typed error.
    with pytest.raises(aula.AulaError.InvalidArgument):
        publisher.push_i420(b"\x00" * 100, 0)

    teacher.disconnect()
    assert wait_until(lambda: any(u.is_participant_left() for u in seen.updates), 10)
    subscription.cancel()
    student.disconnect()


class ThrowingSink(aula.VideoFrameSink):
    """Raises on every other frame, as a buggy app sink might."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = 0
        self.kept = 0

    def on_video_frame(self, participant_id, track_sid, frame):
        with self.lock:
            self.calls += 1
            if self.calls % 2 == 1:
                raise RuntimeError("the app's sink is broken")
            self.kept += 1


def test_a_sink_that_raises_keeps_receiving(server_url):
    options = aula.default_connect_options()
    teacher = aula.connect(server_url, token("py-throw", "teacher", aula.ParticipantRole.TEACHER), options)
    student = aula.connect(server_url, token("py-throw", "student"), options)
    sink = ThrowingSink()
    student.set_video_sink(sink)
    teacher.publish_synthetic_video(WIDTH, HEIGHT, FPS, 300_000, "camera")
    try:
        # The frames after one that raised still arrive: the decoder thread lives on.
        assert wait_until(lambda: sink.kept >= 10, 20), f"{sink.calls} calls, {sink.kept} kept"
        assert student.is_connected()
        assert student.stats().sink_failures >= 10
    finally:
        teacher.disconnect()
        student.disconnect()


def test_calls_after_disconnect_fail_cleanly(server_url):
    room = aula.connect(server_url, token("py-closed", "alice"), aula.default_connect_options())
    publisher = room.publish_app_video(WIDTH, HEIGHT, FPS, 0, aula.TrackOrigin.CAMERA, "cam")
    assert room.is_connected()
    assert room.ping_ms() >= 0
    room.disconnect()
    room.disconnect()  # idempotent
    assert not room.is_connected()
    with pytest.raises(aula.AulaError.Disconnected):
        room.stats()
    with pytest.raises(aula.AulaError.Disconnected):
        room.publish_synthetic_video(WIDTH, HEIGHT, FPS, 0, "late")
    with pytest.raises(aula.AulaError.Disconnected):
        room.add_listener(Collector())
    frame = aula.stamped_i420_frame(WIDTH, HEIGHT, aula.Stamp(sequence=1, capture_time_us=1))
    assert wait_until(lambda: _push_fails(publisher, frame), 5)


def _push_fails(publisher, frame):
    try:
        publisher.push_i420(frame, 0)
        return False
    except aula.AulaError.Disconnected:
        return True


def test_bad_token_and_bad_arguments(server_url):
    with pytest.raises(aula.AulaError.InvalidToken):
        aula.connect(server_url, "not-a-token", aula.default_connect_options())
    forged = mint_token("py-bad", "mallory", aula.ParticipantRole.STUDENT, secret="wrong-secret")
    with pytest.raises(aula.AulaError.Refused):
        aula.connect(server_url, forged, aula.default_connect_options())
    with pytest.raises(aula.AulaError.InvalidArgument):
        aula.stamped_i420_frame(7, 7, aula.Stamp(sequence=0, capture_time_us=0))
    room = aula.connect(server_url, token("py-bad", "bob"), aula.default_connect_options())
    try:
        with pytest.raises(aula.AulaError.InvalidArgument):
            room.publish_app_video(WIDTH, HEIGHT, FPS, 0, aula.TrackOrigin.MICROPHONE, "mic?")
        with pytest.raises(aula.AulaError.InvalidArgument):
            room.unpublish("TR_nope")
    finally:
        room.disconnect()


def test_stamp_helpers_round_trip():
    stamp = aula.Stamp(sequence=77, capture_time_us=123_456_789)
    frame = aula.stamped_i420_frame(WIDTH, HEIGHT, stamp)
    assert aula.read_stamp_i420(WIDTH, HEIGHT, frame) == stamp
    assert aula.read_stamp_i420(WIDTH, HEIGHT, bytes(len(frame))) is None


def test_log_sink_receives_sdk_logs(server_url):
    lines = []

    class Sink(aula.LogSink):
        def on_log(self, level, target, message):
            lines.append((level, target, message))

    aula.set_log_sink(Sink())
    aula.set_log_level(aula.LogLevel.DEBUG)
    try:
        room = aula.connect(server_url, token("py-log", "carol"), aula.default_connect_options())
        room.disconnect()
        assert wait_until(lambda: any(level == aula.LogLevel.DEBUG for level, _, _ in lines), 5)
        # Dependencies such as tungstenite (the signaling WebSocket, which logs its handshake at
        # debug level) log through the `log` crate: their records arrive under their own target.
        targets = {target for _, target, _ in lines}
        assert any(t.startswith("tungstenite") for t in targets), sorted(targets)
        assert "log" not in targets, sorted(targets)
        aula.set_log_level(aula.LogLevel.ERROR)
        time.sleep(0.2)
        lines.clear()
        room = aula.connect(server_url, token("py-log", "dave"), aula.default_connect_options())
        room.disconnect()
        assert all(level == aula.LogLevel.ERROR for level, _, _ in lines), lines[:5]
    finally:
        aula.set_log_level(aula.LogLevel.WARN)
        aula.set_log_sink(None)


def test_encoded_publisher_asks_for_a_keyframe_and_checks_input(server_url):
    room = aula.connect(server_url, token("py-enc", "hw"), aula.default_connect_options())
    try:
        publisher = room.publish_encoded_video(WIDTH, HEIGHT, FPS, aula.TrackOrigin.CAMERA, "hw-camera")
        assert publisher.track().name == "hw-camera"
        requests = []

        class Listener(aula.KeyframeRequestListener):
            def on_keyframe_requested(self):
                requests.append(time.monotonic())

        publisher.set_keyframe_request_listener(Listener())
        # A new publication needs a keyframe first: the app is asked for one.
        assert wait_until(lambda: len(requests) >= 1, 5)
        with pytest.raises(aula.AulaError.InvalidArgument):
            publisher.push(b"\x01\x02\x03\x04\x05", False, 0)  # not Annex-B
        delta = bytes([0, 0, 0, 1, 0x41, 0x9A, 0, 0])
        with pytest.raises(aula.AulaError.InvalidArgument):
            publisher.push(delta, True, 0)  # flagged keyframe, but no IDR/SPS inside
        assert publisher.push(delta, False, 0) == aula.EncodedPushResult.DROPPED_AWAITING_KEYFRAME
        assert publisher.stats().dropped == 1
        room.disconnect()
        with pytest.raises(aula.AulaError.Disconnected):
            publisher.push(delta, False, 1)
    finally:
        room.disconnect()
