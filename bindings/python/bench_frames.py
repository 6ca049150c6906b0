"""Cost of moving one 720p I420 frame across the Python boundary.

    python bindings/python/bench_frames.py [--frames N] [--runs R]

Starts `aula-server --dev` (AULA_SERVER_BIN, default target/debug/aula-server), joins a room,
publishes an app video track and times `push_i420` of a 1280x720 frame (Python bytes -> Rust:
copied into a uniffi buffer, then into the I420 planes). Also times `stamped_i420_frame`
(Rust -> Python: picture generation + one copy out), the direction decoded frames take to a
sink. Prints the median over runs of the per-frame median, in microseconds.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
import aula  # noqa: E402
import conftest  # noqa: E402

W, H = 1280, 720


def per_call_us(fn, n):
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t) / 1000)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gen = conftest.server_url.__wrapped__()
    url = next(gen)
    try:
        token = conftest.mint_token("bench", "py", aula.ParticipantRole.TEACHER)
        room = aula.connect(url, token, aula.default_connect_options())
        publisher = room.publish_app_video(W, H, 30, 2_000_000, aula.TrackOrigin.CAMERA, "bench")
        frame = aula.stamped_i420_frame(W, H, aula.Stamp(sequence=1, capture_time_us=1))
        push = [per_call_us(lambda: publisher.push_i420(frame, 0), args.frames) for _ in range(args.runs)]
        pull = [per_call_us(lambda: aula.stamped_i420_frame(W, H, aula.Stamp(sequence=1, capture_time_us=1)), args.frames // 4) for _ in range(args.runs)]
        room.disconnect()
    finally:
        gen.close()
    print(f"python push_i420 720p: median {statistics.median(push):.0f} us (runs: {', '.join(f'{v:.0f}' for v in push)})")
    print(f"python stamped_i420_frame 720p (Rust->Python): median {statistics.median(pull):.0f} us (runs: {', '.join(f'{v:.0f}' for v in pull)})")


if __name__ == "__main__":
    main()
