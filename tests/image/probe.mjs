// Helpers for scripts/test-image.sh, which tests the server's container image from the host.
// Plain Node (20 or newer; on 20 run with --experimental-websocket), no packages.
//
//   node probe.mjs free-ports N
//       N port numbers on 127.0.0.1 free for both TCP and UDP, one per line.
//   node probe.mjs watch-leave URL ROOM TOKEN TIMEOUT_S
//       Joins ROOM over signaling only (the documented protocol, no media), prints "joined",
//       then waits for the server's `leave` event and prints its reason. Exits 0 when the reason
//       is server_shutdown, 1 on any other reason, a refused join, a closed socket or the timeout.
//   node probe.mjs check-call STATS_JSON MIN_FRAMES FROM...
//       Checks an `aula join --stats-json` file: each FROM's video was received with at least
//       MIN_FRAMES frames decoded, every decoded frame's stamp read back intact, and each FROM's
//       audio decoded. Prints one line per FROM. (A participant's stats list the tracks of those
//       still in the room when it left.)

import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";

const [command, ...args] = process.argv.slice(2);

function fail(message) {
  console.error(message);
  process.exit(1);
}

/** Binds TCP port 0 on loopback, then UDP on the same number; resolves the number or null. */
function tryPort() {
  return new Promise((resolve) => {
    const tcp = createServer();
    tcp.once("error", () => resolve(null));
    tcp.listen(0, "127.0.0.1", () => {
      const port = tcp.address().port;
      const udp = createSocket("udp4");
      udp.once("error", () => tcp.close(() => resolve(null)));
      udp.bind(port, "127.0.0.1", () => udp.close(() => tcp.close(() => resolve(port))));
    });
  });
}

async function freePorts(count) {
  const ports = new Set();
  for (let tries = 0; ports.size < count && tries < 100; tries++) {
    const port = await tryPort();
    if (port !== null) ports.add(port);
  }
  if (ports.size < count) fail(`found only ${ports.size} free ports`);
  console.log([...ports].join("\n"));
}

function watchLeave(url, room, token, timeoutSeconds) {
  if (typeof WebSocket !== "function") {
    fail("this Node has no WebSocket: use Node 22, or Node 20 with --experimental-websocket");
  }
  const timer = setTimeout(
    () => fail(`no leave within ${timeoutSeconds} s`),
    Number(timeoutSeconds) * 1000,
  );
  const socket = new WebSocket(`${url}/rtc`);
  let left = false;
  socket.addEventListener("open", () => {
    socket.send(
      JSON.stringify({ type: "join", id: 1, protocol_version: 1, room, token, auto_subscribe: false }),
    );
  });
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    const message = JSON.parse(event.data);
    if (message.type === "joined") {
      console.log(`joined ${message.room.name} as ${message.participant.id}`);
    } else if (message.type === "error") {
      fail(`refused: ${message.code}: ${message.message}`);
    } else if (message.type === "leave") {
      left = true;
      clearTimeout(timer);
      console.log(`leave ${message.reason}`);
      socket.close();
      process.exit(message.reason === "server_shutdown" ? 0 : 1);
    }
  });
  socket.addEventListener("close", () => {
    if (!left) fail("the socket closed without a leave");
  });
  socket.addEventListener("error", () => {
    if (!left) fail(`cannot reach ${url}/rtc`);
  });
}

function checkCall(path, minFrames, ...senders) {
  const stats = JSON.parse(readFileSync(path, "utf8"));
  const received = stats.received ?? [];
  const problems = [];
  const lines = [];
  for (const from of senders) {
    const video = received.find((r) => r.kind === "video" && r.from === from);
    const audio = received.find((r) => r.kind === "audio" && r.from === from);
    if (!video) {
      problems.push(`received no video from ${from}`);
    } else if (!(video.frames_decoded >= Number(minFrames))) {
      problems.push(`decoded ${video.frames_decoded} frames of ${from}'s video, wanted ${minFrames}`);
    } else if (video.frames_stamped_ok !== video.frames_decoded) {
      problems.push(`${video.frames_stamped_ok} of ${video.frames_decoded} frames of ${from}'s video read back their stamp`);
    }
    if (!audio || !(audio.samples_decoded > 0)) problems.push(`decoded no audio from ${from}`);
    if (video && audio) {
      lines.push(
        `${stats.identity}: ${video.frames_decoded} frames of ${from}'s video decoded ` +
          `(${video.width}x${video.height}, stamps intact, latency p50 ${video.latency_ms.p50.toFixed(1)} ms), ` +
          `${(audio.samples_decoded / 48000).toFixed(1)} s of audio`,
      );
    }
  }
  if (problems.length > 0) fail(`${stats.identity}: ${problems.join("; ")}`);
  console.log(lines.join("\n"));
}

switch (command) {
  case "free-ports":
    await freePorts(Number(args[0] ?? 1));
    break;
  case "watch-leave":
    watchLeave(...args);
    break;
  case "check-call":
    checkCall(...args);
    break;
  default:
    fail("usage: probe.mjs free-ports N | watch-leave URL ROOM TOKEN TIMEOUT_S | check-call STATS MIN_FRAMES FROM...");
}
