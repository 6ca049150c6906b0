// Aula browser client: plain JavaScript on the documented signaling protocol (docs/protocol.md).
// One WebSocket; a publisher connection this page offers on, a subscriber connection the server
// offers on. The server is ICE-lite with its candidate in every SDP, so no trickle is needed.
//
// The classroom (docs/protocol.md, "Classroom"): the page shows where this participant is (lobby,
// audience, stage), raised hands, stage invitations, the spotlight and the chat, and gives
// teachers (`permissions.moderate`) the controls that run the class. The server decides; the page
// shows its state, acts through its requests, and shows the `message` of every refusal.
'use strict';

const PROTOCOL_VERSION = 1;
// The codec Aula speaks: H.264 constrained baseline, packetization mode 1.
const H264_PROFILE = 'profile-level-id=42e01f';
// Most chat messages the server sends at once (on joining, and per history page).
const CHAT_PAGE = 200;
// What this page publishes, when its permissions allow.
const SOURCES = ['camera', 'microphone'];

const state = {
  ws: null,
  nextId: 1,
  pending: new Map(),
  room: null,
  me: null, // this participant's ParticipantInfo
  participants: new Map(), // everyone else this page sees, by participant id
  classroom: null,
  permissions: null,
  chat: new Map(), // by seq
  chatMore: false, // whether older messages may exist
  chatVersion: 0,
  invitation: null, // the teacher who invited this participant to the stage
  local: new Map(), // published tracks by source: { sid, track, sender, muted }
  wantMedia: true,
  publisher: null,
  subscriber: null,
  joined: false,
  ended: null, // { reason, message } once the session is over
  // While the browser waits for a click or key press before it lets the page play sound (its
  // autoplay policy).
  soundBlocked: false,
  error: null, // a failure that stops the page from working
  notice: null, // the last refusal shown
};
window.aula = state;

const $ = (id) => document.getElementById(id);

// Builds an element: h('li', { class: 'x', 'data-id': 1 }, 'text', child).
function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') e.className = value;
    else if (key.includes('-')) e.setAttribute(key, value);
    else e[key] = value;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

function button(label, act, id, name) {
  return h('button', {
    type: 'button', 'data-act': act, 'data-id': id,
    'aria-label': name ? `${label} (${name})` : undefined,
  }, label);
}

function notice(text) {
  state.notice = text;
  $('notice').textContent = text;
  $('notice').hidden = !text;
}
const info = (text) => { $('info').textContent = text; };

function fail(err) {
  state.error = String((err && err.message) || err);
  notice(`Error: ${state.error}`);
  renderStatus();
  console.error(err);
}

/// A request the server refused: `code` for programs, `message` for people.
class Refused extends Error {
  constructor(code, message) { super(message); this.code = code; }
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

// A request made for the person using the page: a refusal is shown, not thrown.
async function act(msg) {
  notice(null);
  try {
    return await request(msg);
  } catch (err) {
    if (!state.ended) notice(err.message);
    return null;
  } finally {
    render();
  }
}

// ---- What the server says ------------------------------------------------------------------

const isTeacher = (p) => p.role === 'teacher' || !!p.co_teacher;
const moderating = () => !!(state.permissions && state.permissions.moderate);
const nameOf = (id) => (state.me && id === state.me.id ? state.me.name
  : (state.participants.get(id) || { name: id }).name);
function nameOfIdentity(identity) {
  if (state.me && identity === state.me.identity) return 'you';
  for (const p of state.participants.values()) if (p.identity === identity) return p.name;
  return identity;
}

function addChat(messages) {
  for (const m of messages) state.chat.set(m.seq, m);
  state.chatVersion++;
}

// `joined` and `admitted` say the same: who this is, who else is here, the class, the chat.
function enterRoom(msg) {
  state.me = msg.participant;
  state.participants = new Map(msg.participants.map((p) => [p.id, p]));
  state.classroom = msg.classroom;
  state.permissions = msg.permissions
    || { publish: SOURCES, subscribe: true, chat: false, unmute: true, moderate: false };
  state.chat = new Map();
  addChat(msg.chat || []);
  state.chatMore = (msg.chat || []).length >= CHAT_PAGE;
  if (msg.classroom) $('allow-unmute').checked = msg.classroom.settings.students_may_unmute;
  syncPublishing();
}

function updateTracks(participantId, change) {
  const p = state.participants.get(participantId);
  if (p) p.tracks = change(p.tracks || []);
}

function dropMedia(selector) {
  for (const el of document.querySelectorAll(`#grid ${selector}, #sound ${selector}`)) {
    const media = el.matches('audio') ? el : el.querySelector('video');
    if (media) media.srcObject = null;
    el.remove();
  }
}

const events = {
  participant_joined(m) { state.participants.set(m.participant.id, m.participant); },
  participant_updated(m) {
    if (m.participant.id === state.me.id) {
      state.me = m.participant;
      if (state.me.placement !== 'audience') state.invitation = null;
    } else {
      state.participants.set(m.participant.id, m.participant);
    }
  },
  participant_left(m) {
    state.participants.delete(m.participant_id);
    dropMedia(`[data-participant="${m.participant_id}"]`);
  },
  track_added(m) {
    updateTracks(m.participant_id, (ts) => ts.filter((t) => t.sid !== m.track.sid).concat(m.track));
  },
  track_removed(m) {
    if (m.participant_id === state.me.id) {
      ownTrackEnded(m.track_sid);
      return;
    }
    updateTracks(m.participant_id, (ts) => ts.filter((t) => t.sid !== m.track_sid));
    dropMedia(`[data-track="${m.track_sid}"]`);
  },
  track_muted(m) {
    if (m.participant_id === state.me.id) {
      ownTrackMuted(m);
      return;
    }
    updateTracks(m.participant_id, (ts) => ts.map((t) => (t.sid === m.track_sid ? { ...t, muted: m.muted } : t)));
  },
  classroom_updated(m) {
    const before = state.classroom;
    state.classroom = m.classroom;
    if (!before || before.settings.students_may_unmute !== m.classroom.settings.students_may_unmute) {
      $('allow-unmute').checked = m.classroom.settings.students_may_unmute;
    }
  },
  permissions_changed(m) {
    state.permissions = m.permissions;
    state.chatVersion++;
    syncPublishing();
  },
  admitted(m) {
    enterRoom(m);
    info('A teacher let you in.');
  },
  stage_invitation(m) { state.invitation = m.from; },
  stage_invitation_answered(m) {
    info(`${nameOf(m.participant_id)} ${m.accepted ? 'went on stage' : 'declined to go on stage'}.`);
  },
  chat(m) {
    addChat([m.message]);
    const who = m.message.kind === 'system' ? 'Class' : m.message.from_name;
    $('chat-live').textContent = `${m.message.kind === 'announcement' ? 'Announcement from ' : ''}${who}: ${m.message.text}`;
  },
  chat_deleted(m) {
    const message = state.chat.get(m.seq);
    if (message) Object.assign(message, { deleted: true, text: '' });
    state.chatVersion++;
  },
  subscriber_offer(m) { answerSubscriber(m.sdp).catch(fail); },
  leave(m) { end(m.reason, m.message); },
  error(m) { notice(m.message); },
};

function onMessage(event) {
  if (typeof event.data !== 'string') return; // the whiteboard's binary frames: not shown here
  const msg = JSON.parse(event.data);
  if (msg.request_id !== undefined && state.pending.has(msg.request_id)) {
    const { resolve, reject } = state.pending.get(msg.request_id);
    state.pending.delete(msg.request_id);
    if (msg.type === 'error') reject(new Refused(msg.code, msg.message));
    else resolve(msg);
    return;
  }
  // Events this page does not use, and types from newer servers, are ignored.
  if (state.joined && Object.hasOwn(events, msg.type)) events[msg.type](msg);
  render();
}

const ENDINGS = {
  denied: 'The teacher did not let you in',
  removed: 'You were removed from the class',
  class_ended: 'The class has ended',
  duplicate_identity: 'You joined from somewhere else',
  server_shutdown: 'The server closed the session',
  client_request: 'You left the room',
  connection_lost: 'The connection was lost',
};

// The session is over (a reason the page does not know ends it too, without reconnecting).
function end(reason, message) {
  state.ended = { reason, message: message || null };
  state.joined = false;
  state.invitation = null;
  for (const { track } of state.local.values()) track.stop();
  state.local.clear();
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  dropMedia('[data-track]');
  $('leave').disabled = true;
  render();
}

// ---- What the page shows -------------------------------------------------------------------

// Replaces a list's items, keeping the focus on the same button when it is still there.
function fill(list, items, empty) {
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset : null;
  list.replaceChildren(...(items.length ? items : [h('li', { class: 'empty' }, empty)]));
  if (focused && focused.act) {
    const again = list.querySelector(`[data-act="${focused.act}"][data-id="${focused.id}"]`);
    if (again) again.focus();
  }
}

function render() {
  const inRoom = state.joined && state.me.placement !== 'lobby';
  document.body.dataset.placement = state.ended ? 'ended' : (state.joined ? state.me.placement : '');
  $('lobby').hidden = !(state.joined && state.me.placement === 'lobby');
  $('room').hidden = !inRoom;
  $('ended').hidden = !state.ended;
  renderStatus();
  if (state.ended) {
    $('ended-title').textContent = ENDINGS[state.ended.reason] || `The session ended (${state.ended.reason})`;
    $('ended-text').textContent = state.ended.message ? `Reason: ${state.ended.message}` : '';
  }
  if (state.joined && !inRoom) {
    $('lobby-text').textContent = state.classroom && state.classroom.teacher_present
      ? 'Waiting for the teacher to let you in.'
      : 'No teacher here yet. Please wait: a teacher will let you in once one arrives.';
  }
  if (inRoom) renderRoom();
}

function renderStatus() {
  const status = $('status');
  if (!state.joined) {
    const connecting = state.ws && state.ws.readyState <= WebSocket.OPEN && !state.ended && !state.error;
    status.textContent = connecting ? 'Connecting…' : 'Not connected.';
    return;
  }
  const role = state.me.co_teacher ? 'co-teacher' : state.me.role;
  const locked = state.classroom && state.classroom.locked ? ' The room is locked.' : '';
  const sound = state.soundBlocked ? ' Click anywhere on the page to hear the others.' : '';
  status.textContent = `In room ${state.room} as ${state.me.name} (${role}).${locked}${sound}`;
}

function placementText() {
  const { me } = state;
  const call = state.classroom.settings.mode === 'call';
  if (isTeacher(me)) return call ? 'You are running the call.' : 'You are teaching: the class sees and hears you.';
  if (me.placement === 'stage') {
    return call ? 'You are in the call: everyone sees and hears everyone.'
      : 'You are on stage: the class sees and hears you.';
  }
  if (me.role === 'observer') return 'You are watching.';
  return 'You are in the audience: you see and hear the stage. Raise your hand to ask to speak.';
}

function renderRoom() {
  const { me, classroom } = state;
  const student = me.role === 'student' && !me.co_teacher;
  const spotlight = classroom.spotlight || null;
  $('placement').textContent = placementText();

  const hand = $('hand');
  hand.hidden = !student;
  hand.textContent = me.hand_raised ? 'Lower hand' : 'Raise hand';
  hand.setAttribute('aria-pressed', String(!!me.hand_raised));
  $('leave-stage').hidden = !(student && me.placement === 'stage' && classroom.settings.mode === 'class');
  for (const [source, off, on] of [['microphone', 'Unmute microphone', 'Mute microphone'],
    ['camera', 'Turn camera on', 'Turn camera off']]) {
    const local = state.local.get(source);
    const toggle = $(`mute-${source}`);
    toggle.hidden = !local;
    toggle.textContent = local && local.muted ? off : on;
    toggle.setAttribute('aria-pressed', String(!!(local && local.muted)));
  }

  $('invitation').hidden = !state.invitation;
  if (state.invitation) $('invitation-text').textContent = `${nameOf(state.invitation)} invites you to the stage.`;

  const announcement = [...state.chat.values()].filter((m) => m.kind === 'announcement' && !m.deleted)
    .sort((a, b) => b.seq - a.seq)[0];
  $('announcement').hidden = !announcement;
  if (announcement) $('announcement').textContent = `Announcement from ${announcement.from_name}: ${announcement.text}`;

  $('spotlight-text').hidden = !spotlight;
  if (spotlight) $('spotlight-text').textContent = `In the spotlight: ${nameOf(spotlight)}`;
  for (const figure of $('grid').children) {
    figure.classList.toggle('spotlight', figure.dataset.participant === spotlight);
    const own = figure.dataset.participant === me.id;
    figure.querySelector('figcaption').textContent = own ? `${me.name} (you)` : nameOf(figure.dataset.participant);
  }

  const others = [...state.participants.values()];
  const admitted = [me, ...others].filter((p) => p.placement !== 'lobby');
  const capacity = classroom.settings.mode === 'class'
    ? ` (${classroom.stage_count} of ${classroom.settings.stage_capacity} students)` : '';
  $('on-stage-title').textContent = `On stage${capacity}`;
  fill($('on-stage'), admitted.filter((p) => p.placement === 'stage').map(personItem), 'Nobody.');
  fill($('audience'), admitted.filter((p) => p.placement === 'audience').map(personItem), 'Nobody.');
  fill($('hands'), classroom.hands.map((id) => h('li', { 'data-participant': id }, nameOf(id),
    ...(moderating() ? [' ', button('Accept', 'invite_to_stage', id, nameOf(id)),
      button('Dismiss', 'dismiss_hand', id, nameOf(id))] : []))), 'No hands raised.');

  $('teacher').hidden = !moderating();
  if (moderating()) renderTeacher(others);
  renderChat(admitted);
}

function personItem(p) {
  const own = p.id === state.me.id;
  const tracks = own ? [...state.local.entries()].map(([source, t]) => ({ source, muted: t.muted }))
    : p.tracks || [];
  const tags = [];
  if (own) tags.push('you');
  if (p.role === 'teacher') tags.push('teacher');
  else if (p.co_teacher) tags.push('co-teacher');
  else if (p.role === 'observer') tags.push('observer');
  if (p.hand_raised) tags.push('hand raised');
  for (const t of tracks) {
    if (t.source === 'microphone') tags.push(t.muted ? 'microphone muted' : 'microphone on');
    if (t.source === 'camera') tags.push(t.muted ? 'camera off' : 'camera on');
    if (t.source === 'screen_share') tags.push('sharing the screen');
  }
  if (state.classroom.spotlight === p.id) tags.push('in the spotlight');
  const item = h('li', { 'data-participant': p.id }, p.name, ' ', h('span', { class: 'tags' }, `(${tags.join(', ') || p.role})`));
  if (moderating() && !own) item.append(h('br'), ...moderationButtons(p, tracks));
  return item;
}

function moderationButtons(p, tracks) {
  const student = !isTeacher(p);
  const b = (label, act) => button(label, act, p.id, p.name);
  const buttons = [];
  if (student && p.placement === 'stage' && state.classroom.settings.mode === 'class') buttons.push(b('Move to audience', 'move_to_audience'));
  if (student && p.placement === 'audience') buttons.push(b('Invite to stage', 'invite_to_stage'));
  if (p.placement === 'stage') buttons.push(b('Mute microphone', 'mute_audio'), b('Turn camera off', 'mute_video'));
  if (tracks.some((t) => t.source === 'screen_share')) buttons.push(b('Stop screen share', 'stop_screen_share'));
  buttons.push(state.classroom.spotlight === p.id ? b('End spotlight', 'spotlight_off') : b('Spotlight', 'spotlight'));
  if (p.role !== 'teacher') buttons.push(p.co_teacher ? b('Remove co-teacher', 'co_teacher_off') : b('Make co-teacher', 'co_teacher_on'));
  buttons.push(b('Remove', 'remove'));
  return buttons;
}

function renderTeacher(others) {
  const waiting = others.filter((p) => p.placement === 'lobby');
  fill($('lobby-list'), waiting.map((p) => h('li', { 'data-participant': p.id }, p.name, ' ',
    button('Admit', 'admit', p.id, p.name), button('Deny', 'deny', p.id, p.name))), 'Nobody is waiting.');
  $('lock').textContent = state.classroom.locked ? 'Unlock the room' : 'Lock the room';
  $('spotlight-off').hidden = !state.classroom.spotlight;
  const form = $('settings');
  if (!form.dataset.dirty) {
    const s = state.classroom.settings;
    form.mode.value = s.mode;
    form.stage_capacity.value = s.stage_capacity;
    form.chat.value = s.chat;
    for (const flag of ['lobby', 'auto_stage', 'student_private_chat', 'students_may_unmute']) form[flag].checked = s[flag];
  }
}

let chatShown = -1;
function renderChat(admitted) {
  const may = !!state.permissions.chat;
  $('chat-form').hidden = !may;
  $('chat-closed').hidden = may;
  $('announce-label').hidden = !moderating();
  $('older').hidden = !state.chatMore;
  // Private recipients: teachers always; other students when the room allows it.
  const to = $('chat-form').to;
  const chosen = to.value;
  const privateToStudents = moderating() || state.classroom.settings.student_private_chat;
  const recipients = admitted.filter((p) => p.id !== state.me.id && (privateToStudents || isTeacher(p)));
  to.replaceChildren(h('option', { value: '' }, 'everyone'),
    ...recipients.map((p) => h('option', { value: p.id }, `${p.name} (private)`)));
  to.value = recipients.some((p) => p.id === chosen) ? chosen : '';

  if (chatShown === state.chatVersion) return;
  chatShown = state.chatVersion;
  const list = $('chat');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  const messages = [...state.chat.values()].sort((a, b) => a.seq - b.seq);
  fill(list, messages.map(chatItem), 'No messages yet.');
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function chatItem(m) {
  const kind = m.kind || 'message';
  const who = kind === 'system' ? 'Class' : m.from_name || m.from;
  const to = m.to ? ` to ${nameOfIdentity(m.to)} (private)` : '';
  const time = new Date(m.time);
  const item = h('li', { class: [kind, m.to ? 'private' : '', m.deleted ? 'deleted' : ''].join(' '), 'data-seq': m.seq },
    h('time', { dateTime: time.toISOString() }, time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
    kind === 'announcement' ? h('strong', {}, 'Announcement ') : null,
    h('strong', {}, `${who}${to}: `),
    m.deleted ? 'message deleted' : m.text);
  if (!m.deleted && (m.from === state.me.identity || moderating())) {
    item.append(' ', button('Delete', 'delete_chat', m.seq, `message ${m.seq}`));
  }
  return item;
}

// ---- What the person does ------------------------------------------------------------------

const reason = () => $('reason').value.trim();
const actions = {
  admit: (id) => ({ type: 'admit', participant_id: id }),
  deny: (id) => ({ type: 'deny', participant_id: id, reason: reason() }),
  admit_all: () => ({ type: 'admit_all' }),
  invite_to_stage: (id) => ({ type: 'invite_to_stage', participant_id: id }),
  dismiss_hand: (id) => ({ type: 'lower_hand', participant_id: id }),
  move_to_audience: (id) => ({ type: 'move_to_audience', participant_id: id }),
  clear_stage: () => ({ type: 'clear_stage' }),
  mute_audio: (id) => ({ type: 'mute_participant', participant_id: id, kind: 'audio' }),
  mute_video: (id) => ({ type: 'mute_participant', participant_id: id, kind: 'video' }),
  mute_all_audio: () => ({ type: 'mute_all', kind: 'audio', allow_unmute: $('allow-unmute').checked }),
  mute_all_video: () => ({ type: 'mute_all', kind: 'video', allow_unmute: $('allow-unmute').checked }),
  stop_screen_share: (id) => ({ type: 'stop_screen_share', participant_id: id }),
  remove: (id) => (window.confirm(`Remove ${nameOf(id)} from the class? They cannot come back to it.`)
    ? { type: 'remove_participant', participant_id: id, reason: reason() } : null),
  co_teacher_on: (id) => ({ type: 'set_co_teacher', participant_id: id, co_teacher: true }),
  co_teacher_off: (id) => ({ type: 'set_co_teacher', participant_id: id, co_teacher: false }),
  spotlight: (id) => ({ type: 'spotlight', participant_id: id }),
  spotlight_off: () => ({ type: 'spotlight' }),
  lock: () => ({ type: 'lock_room', locked: !state.classroom.locked }),
  end_class: () => (window.confirm('End the class for everyone?') ? { type: 'end_class' } : null),
  delete_chat: (seq) => ({ type: 'delete_chat', seq: Number(seq) }),
};

document.addEventListener('click', (event) => {
  const target = event.target.closest('button[data-act]');
  if (!target || !state.joined) return;
  const msg = actions[target.dataset.act](target.dataset.id);
  if (msg) act(msg);
});

$('hand').addEventListener('click', () => act({ type: state.me.hand_raised ? 'lower_hand' : 'raise_hand' }));
$('leave-stage').addEventListener('click', () => act({ type: 'move_to_audience', participant_id: state.me.id }));
$('mute-microphone').addEventListener('click', () => toggleMute('microphone'));
$('mute-camera').addEventListener('click', () => toggleMute('camera'));

async function answerInvitation(accept) {
  // Refused (`stage_full`), the invitation stands.
  if (await act({ type: 'answer_stage_invitation', accept })) state.invitation = null;
  render();
}
$('accept-stage').addEventListener('click', () => answerInvitation(true));
$('decline-stage').addEventListener('click', () => answerInvitation(false));

$('chat-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const msg = { type: 'send_chat', text: form.text.value };
  if (form.to.value) msg.to = form.to.value;
  if (moderating() && form.announcement.checked) msg.announcement = true;
  const reply = await act(msg);
  if (!reply) return;
  form.text.value = '';
  form.announcement.checked = false;
  addChat([reply.message]);
  render();
});

$('older').addEventListener('click', async () => {
  const oldest = Math.min(...state.chat.keys());
  const reply = await act({ type: 'chat_history', before: oldest, limit: CHAT_PAGE });
  if (!reply) return;
  addChat(reply.messages);
  state.chatMore = reply.more;
  render();
});

$('settings').addEventListener('input', (event) => { event.currentTarget.dataset.dirty = '1'; });
$('settings').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const settings = {
    mode: form.mode.value,
    stage_capacity: Number(form.stage_capacity.value),
    chat: form.chat.value,
  };
  for (const flag of ['lobby', 'auto_stage', 'student_private_chat', 'students_may_unmute']) settings[flag] = form[flag].checked;
  if (await act({ type: 'update_room_settings', settings })) delete form.dataset.dirty;
  render();
});

// ---- Media ---------------------------------------------------------------------------------

function preferH264(transceiver) {
  const codecs = RTCRtpSender.getCapabilities('video').codecs;
  const h264 = codecs.filter((c) => c.mimeType === 'video/H264'
    && (c.sdpFmtpLine || '').includes('packetization-mode=1')
    && (c.sdpFmtpLine || '').includes(H264_PROFILE));
  const rest = codecs.filter((c) => c.mimeType === 'video/rtx' || c.mimeType === 'video/red'
    || c.mimeType === 'video/ulpfec');
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

function addVideo(participantId, trackSid, stream) {
  let figure = $('grid').querySelector(`figure[data-track="${trackSid}"]`);
  if (!figure) {
    // Always muted (sound plays through its own audio elements): browsers let a muted video
    // start by itself, so a page opened with `?token=` shows the others before any click.
    const video = h('video', { autoplay: true, playsInline: true, muted: true });
    video.setAttribute('muted', '');
    video.setAttribute('playsinline', '');
    figure = h('figure', { 'data-participant': participantId, 'data-track': trackSid }, video, h('figcaption'));
    $('grid').append(figure);
  }
  const video = figure.querySelector('video');
  video.srcObject = stream;
  // (A newer source replacing this one rejects the older play(); nothing to report.)
  video.play().catch(() => {});
}

function playAudio(audio) {
  audio.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return;
    state.soundBlocked = true;
    renderStatus();
  });
}

// The first click or key press lets the page play the sound the browser held back.
function resumeSound() {
  if (!state.soundBlocked) return;
  state.soundBlocked = false;
  for (const audio of $('sound').querySelectorAll('audio')) playAudio(audio);
  renderStatus();
}
document.addEventListener('pointerdown', resumeSound);
document.addEventListener('keydown', resumeSound);

async function waitForCandidates(pc) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    });
  });
}

// Publisher work (adding, removing, renegotiating) runs one step at a time.
let publisherQueue = Promise.resolve();
function enqueue(step) {
  publisherQueue = publisherQueue.then(step).catch(fail).finally(render);
  return publisherQueue;
}

async function negotiate() {
  const pc = state.publisher;
  await pc.setLocalDescription(await pc.createOffer());
  await waitForCandidates(pc);
  const answer = await request({ type: 'publisher_offer', sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
}

const mayPublish = (source) => state.permissions.publish.includes(source);

// Publishes the camera and microphone this participant may publish now and does not yet
// (on joining the stage, on admission to a call, when a teacher allows it).
function syncPublishing() {
  if (!state.wantMedia || !SOURCES.some((s) => mayPublish(s) && !state.local.has(s))) return;
  enqueue(async () => {
    const sources = SOURCES.filter((s) => state.joined && mayPublish(s) && !state.local.has(s));
    if (!sources.length) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      video: sources.includes('camera') && { width: 640, height: 360 },
      audio: sources.includes('microphone'),
    });
    if (!state.publisher) state.publisher = new RTCPeerConnection();
    let added = false;
    for (const track of stream.getTracks()) {
      const source = track.kind === 'video' ? 'camera' : 'microphone';
      const { width, height } = track.getSettings();
      let reply;
      try {
        reply = await request({ type: 'publish_track', cid: track.id, source, name: source, width, height });
      } catch (err) {
        track.stop();
        notice(err.message);
        continue;
      }
      const transceiver = state.publisher.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      if (track.kind === 'video') preferH264(transceiver);
      // A track a teacher's mute covers starts muted.
      track.enabled = !reply.track.muted;
      state.local.set(source, { sid: reply.track.sid, track, sender: transceiver.sender, muted: reply.track.muted });
      if (track.kind === 'video') addVideo(state.me.id, reply.track.sid, new MediaStream([track]));
      added = true;
    }
    if (added) await negotiate();
  });
}

// The server ended one of this page's tracks (moved to the audience, a screen share stopped,
// a permission taken away): stop sending it and take it out of the publisher connection.
function ownTrackEnded(sid) {
  enqueue(async () => {
    const found = [...state.local.entries()].find(([, t]) => t.sid === sid);
    if (!found || !state.publisher) return;
    const [source, local] = found;
    state.local.delete(source);
    local.track.stop();
    state.publisher.removeTrack(local.sender);
    dropMedia(`[data-track="${sid}"]`);
    await negotiate();
  });
}

function ownTrackMuted(m) {
  const local = [...state.local.values()].find((t) => t.sid === m.track_sid);
  if (!local) return;
  local.muted = m.muted;
  local.track.enabled = !m.muted;
  if (m.muted && m.by_moderator) info(`A teacher muted your ${local.track.kind === 'video' ? 'camera' : 'microphone'}.`);
}

async function toggleMute(source) {
  const local = state.local.get(source);
  if (!local) return;
  const muted = !local.muted;
  if (await act({ type: 'set_track_muted', sid: local.sid, muted })) {
    local.muted = muted;
    local.track.enabled = !muted;
  }
  render();
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
      if (event.track.kind === 'video') {
        addVideo(participantId, trackSid, stream);
      } else {
        const audio = h('audio', { srcObject: stream, 'data-participant': participantId, 'data-track': trackSid });
        $('sound').append(audio);
        playAudio(audio);
      }
      render();
    };
    state.subscriber = pc;
  }
  const pc = state.subscriber;
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await waitForCandidates(pc);
  await request({ type: 'subscriber_answer', sdp: pc.localDescription.sdp });
}

// ---- Joining and leaving -------------------------------------------------------------------

function tokenRoom(token) {
  const payload = token.split('.')[1] || '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(json).room;
}

async function join(token, withMedia) {
  Object.assign(state, {
    nextId: 1, pending: new Map(), participants: new Map(), chat: new Map(), invitation: null,
    ended: null, error: null, wantMedia: withMedia, room: tokenRoom(token),
  });
  notice(null);
  info('');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/rtc`);
  state.ws = ws;
  ws.onmessage = onMessage;
  ws.onclose = () => {
    for (const { reject } of state.pending.values()) reject(new Error('the connection closed'));
    state.pending.clear();
    if (state.ws === ws && state.joined) end('connection_lost');
  };
  render();
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('cannot reach the server'));
  });
  const joined = await request({
    type: 'join', protocol_version: PROTOCOL_VERSION, room: state.room, token, auto_subscribe: true,
  });
  state.joined = true;
  enterRoom(joined);
  $('leave').disabled = false;
  render();
}

async function leave() {
  if (!state.joined) return;
  try { await request({ type: 'leave' }); } catch (_) { /* closing anyway */ }
  state.ws.close();
  end('client_request');
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  join(form.get('token').trim(), form.get('publish') === 'on').catch(fail);
});
$('leave').addEventListener('click', () => leave().catch(fail));

// `?token=...` joins at once (links handed out by a backend, and the browser tests);
// `&publish=0` joins without camera and microphone.
const params = new URLSearchParams(location.search);
if (params.get('token')) {
  document.querySelector('input[name=token]').value = params.get('token');
  join(params.get('token'), params.get('publish') !== '0').catch(fail);
}
