// Aula browser client: plain JavaScript on the documented signaling protocol (docs/protocol.md).
// One WebSocket; a publisher connection this page offers on, a subscriber connection the server
// offers on. The server is ICE-lite with its candidate in every SDP, so no trickle is needed.
'use strict';

const PROTOCOL_VERSION = 1;
// The codec Aula speaks: H.264 constrained baseline, packetization mode 1.
const H264_PROFILE = 'profile-level-id=42e01f';

const state = {
  ws: null,
  nextId: 1,
  pending: new Map(),
  me: null,
  participants: new Map(),
  publisher: null,
  subscriber: null,
  joined: false,
  error: null,
  // The others' sound, one audio element per track; `soundBlocked` while the browser waits for
  // a click or key press before it lets the page play sound (its autoplay policy).
  audio: new Set(),
  soundBlocked: false,
};
window.aula = state;

const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };

function tokenRoom(token) {
  const payload = token.split('.')[1] || '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(json).room;
}

function send(msg) { state.ws.send(JSON.stringify(msg)); }

function request(msg) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    send({ ...msg, id });
    setTimeout(() => {
      if (state.pending.delete(id)) reject(new Error(`no reply to ${msg.type}`));
    }, 10000);
  });
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.request_id !== undefined && state.pending.has(msg.request_id)) {
    const { resolve, reject } = state.pending.get(msg.request_id);
    state.pending.delete(msg.request_id);
    if (msg.type === 'error') reject(new Error(`${msg.code}: ${msg.message}`));
    else resolve(msg);
    return;
  }
  switch (msg.type) {
    case 'participant_joined':
      state.participants.set(msg.participant.id, msg.participant);
      break;
    case 'participant_left':
      state.participants.delete(msg.participant_id);
      document.querySelectorAll(`figure[data-participant="${msg.participant_id}"]`)
        .forEach((f) => f.remove());
      break;
    case 'track_removed':
      document.querySelectorAll(`figure[data-track="${msg.track_sid}"]`).forEach((f) => f.remove());
      break;
    case 'subscriber_offer':
      answerSubscriber(msg.sdp).catch(fail);
      break;
    case 'leave':
      status(`The server ended the session (${msg.reason}).`);
      break;
    case 'error':
      console.warn('server error', msg.code, msg.message);
      break;
    default:
      break; // events this page does not use, and types from newer servers
  }
  renderStatus();
}

function renderStatus() {
  if (!state.joined) return;
  const names = [...state.participants.values()].map((p) => p.name).join(', ') || 'nobody else';
  const sound = state.soundBlocked ? ' Click anywhere on the page to hear them.' : '';
  status(`In room ${state.room} as ${state.me.name}. With: ${names}.${sound}`);
}

function playAudio(audio) {
  audio.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return;
    state.soundBlocked = true;
    renderStatus();
  });
}

function resumeSound() {
  if (!state.soundBlocked) return;
  state.soundBlocked = false;
  for (const audio of state.audio) playAudio(audio);
  renderStatus();
}

function fail(err) {
  state.error = String(err && err.message || err);
  status(`Error: ${state.error}`);
  console.error(err);
}

function preferH264(transceiver) {
  const codecs = RTCRtpSender.getCapabilities('video').codecs;
  const h264 = codecs.filter((c) => c.mimeType === 'video/H264'
    && (c.sdpFmtpLine || '').includes('packetization-mode=1')
    && (c.sdpFmtpLine || '').includes(H264_PROFILE));
  const rest = codecs.filter((c) => c.mimeType === 'video/rtx' || c.mimeType === 'video/red'
    || c.mimeType === 'video/ulpfec');
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

function addVideo(participantId, trackSid, stream, label) {
  let figure = document.querySelector(`figure[data-track="${trackSid}"]`);
  if (!figure) {
    figure = document.createElement('figure');
    figure.dataset.participant = participantId;
    figure.dataset.track = trackSid;
    const video = document.createElement('video');
    // Always muted (sound plays through its own audio elements): browsers let a muted video
    // start by itself, so a page opened with `?token=` shows the others before any click.
    video.muted = true;
    video.setAttribute('muted', '');
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    const caption = document.createElement('figcaption');
    caption.textContent = label;
    figure.append(video, caption);
    $('grid').append(figure);
  }
  const video = figure.querySelector('video');
  video.srcObject = stream;
  // (A newer source replacing this one rejects the older play(); nothing to report.)
  video.play().catch(() => {});
}

async function waitForCandidates(pc) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    });
  });
}

async function publish(stream) {
  const pc = new RTCPeerConnection();
  state.publisher = pc;
  for (const track of stream.getTracks()) {
    const source = track.kind === 'video' ? 'camera' : 'microphone';
    const settings = track.getSettings();
    const reply = await request({
      type: 'publish_track', cid: track.id, source, name: source,
      width: settings.width, height: settings.height,
    });
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') preferH264(transceiver);
    track.sid = reply.track.sid;
  }
  await pc.setLocalDescription(await pc.createOffer());
  await waitForCandidates(pc);
  const answer = await request({ type: 'publisher_offer', sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
}

// The participant and track a subscriber section carries: its `a=msid:<participant> <track>`
// in the latest offer. (A section whose track ended is reused for the next track of its kind,
// while a browser keeps the receiving track object, and its id, from the section's first use.)
function msidOf(sdp, mid) {
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.includes(`a=mid:${mid}`)) continue;
    const msid = lines.find((l) => l.startsWith('a=msid:'));
    if (msid) {
      const [participantId, trackSid] = msid.slice('a=msid:'.length).split(' ');
      return { participantId, trackSid };
    }
  }
  return null;
}

async function answerSubscriber(sdp) {
  if (!state.subscriber) {
    const pc = new RTCPeerConnection();
    pc.ontrack = (event) => {
      const origin = msidOf(pc.remoteDescription.sdp, event.transceiver.mid);
      const stream = new MediaStream([event.track]);
      const participantId = origin ? origin.participantId : (event.streams[0] || stream).id;
      const trackSid = origin ? origin.trackSid : event.track.id;
      const who = state.participants.get(participantId);
      if (event.track.kind === 'video') {
        addVideo(participantId, trackSid, stream, who ? who.name : participantId);
      } else {
        const audio = new Audio();
        audio.srcObject = new MediaStream([event.track]);
        state.audio.add(audio);
        event.track.addEventListener('ended', () => state.audio.delete(audio));
        playAudio(audio);
      }
    };
    state.subscriber = pc;
  }
  const pc = state.subscriber;
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await waitForCandidates(pc);
  await request({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
}

async function join(token, withMedia) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  state.ws = new WebSocket(`${scheme}://${location.host}/rtc`);
  state.ws.onmessage = onMessage;
  state.ws.onclose = () => { if (state.joined) status('Disconnected.'); state.joined = false; };
  await new Promise((resolve, reject) => {
    state.ws.onopen = resolve;
    state.ws.onerror = () => reject(new Error('cannot reach the server'));
  });
  state.room = tokenRoom(token);
  const joined = await request({
    type: 'join', protocol_version: PROTOCOL_VERSION, room: state.room, token,
    auto_subscribe: true,
  });
  state.me = joined.participant;
  for (const p of joined.participants) state.participants.set(p.id, p);
  state.joined = true;
  renderStatus();
  $('leave').disabled = false;
  if (withMedia) {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 360 }, audio: true,
    });
    addVideo(state.me.id, 'local', stream, `${state.me.name} (you)`);
    await publish(stream);
  }
}

async function leave() {
  if (!state.ws) return;
  try { await request({ type: 'leave' }); } catch (_) { /* closing anyway */ }
  state.ws.close();
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  for (const audio of state.audio) audio.srcObject = null;
  state.audio.clear();
  state.soundBlocked = false;
  state.joined = false;
  $('grid').replaceChildren();
  $('leave').disabled = true;
  status('Left the room.');
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  join(form.get('token').trim(), form.get('publish') === 'on').catch(fail);
});
$('leave').addEventListener('click', () => leave().catch(fail));
document.addEventListener('pointerdown', resumeSound);
document.addEventListener('keydown', resumeSound);

// `?token=...` joins at once (links handed out by a backend, and the browser tests).
const params = new URLSearchParams(location.search);
if (params.get('token')) {
  document.querySelector('input[name=token]').value = params.get('token');
  join(params.get('token'), params.get('publish') !== '0').catch(fail);
}
