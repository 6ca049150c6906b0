"""Test fixtures: a local aula-server on free loopback ports, and access tokens for it."""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEV_KEY = "devkey"
DEV_SECRET = "devsecret"

# Each role's default grants (docs/protocol.md, "Tokens").
DEFAULT_GRANTS = {
    "teacher": {"publish": ["camera", "microphone", "screen_share"], "subscribe": True,
                "whiteboard_write": True, "room_admin": True},
    "student": {"publish": ["camera", "microphone"], "subscribe": True,
                "whiteboard_write": False, "room_admin": False},
    "observer": {"publish": [], "subscribe": True, "whiteboard_write": False, "room_admin": False},
}


def mint_token(room, identity, role, secret=DEV_SECRET, ttl_secs=600, classroom=None):
    """An access token as an application's backend mints it (docs/protocol.md, "Tokens"): a JWT
    signed with HS256 by the API secret, with the role's default grants. `role` is an
    `aula.ParticipantRole` or its name; `classroom` (a dict, e.g. `{"mode": "class", "lobby":
    True}`) configures the room the token opens (docs/protocol.md, "Classroom"). The SDK has no
    way to mint tokens: an app never holds the secret."""
    role = getattr(role, "name", role).lower()
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": DEV_KEY}
    claims = {"iss": DEV_KEY, "sub": identity, "room": room, "role": role,
              "grants": DEFAULT_GRANTS[role], "iat": now, "exp": now + ttl_secs}
    if classroom is not None:
        claims["classroom"] = classroom

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def part(value):
        return b64(json.dumps(value, separators=(",", ":")).encode())

    signing_input = f"{part(header)}.{part(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


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
