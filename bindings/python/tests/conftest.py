"""Test fixtures: a local aula-server on free loopback ports."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEV_KEY = "devkey"
DEV_SECRET = "devsecret"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_url():
    """Starts `aula-server --dev` (AULA_SERVER_BIN, default target/debug/aula-server)."""
    binary = os.environ.get("AULA_SERVER_BIN", str(ROOT / "target" / "debug" / "aula-server"))
    port = free_port()
    rtc_port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [binary, "--dev", "--listen", f"127.0.0.1:{port}", "--rtc-port", str(rtc_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"aula-server exited: {proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("aula-server did not start listening")
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
