"""A small class through a real aula-server, driven from Python: a teacher and a student whose
tokens configure the room as a class with a lobby. Lobby, admission, raised hand, stage
invitation, publishing on stage, moderation, chat with its sequence numbers, typed refusals,
removal."""

import threading
import time

import pytest

import aula
from conftest import mint_token

CLASS = {"mode": "class", "lobby": True}


class Events(aula.RoomListener):
    """Keeps a room's updates and waits for one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.updates = []

    def on_update(self, update):
        with self.lock:
            self.updates.append(update)

    def wait_for(self, predicate, what, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = next((u for u in self.updates if predicate(u)), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)


def refused(call):
    """The code of the server's refusal of `call`."""
    with pytest.raises(aula.AulaError.Refused) as refusal:
        call()
    return refusal.value.code


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def join(url, identity, role, options):
    room = aula.connect(url, mint_token("py-class", identity, role, classroom=CLASS), options)
    events = Events()
    return room, events, room.add_listener(events)


def test_a_class_lobby_stage_chat_moderation_and_removal(server_url):
    options = aula.default_connect_options()
    # Participant ids must stay the same through the test: no silent rejoin.
    options.reconnect = False
    teacher, t_events, t_sub = join(server_url, "teacher", "teacher", options)
    student, s_events, s_sub = join(server_url, "student", "student", options)
    teacher_id = teacher.local_participant().id
    me = student.local_participant()

    # The lobby: the student sees nobody and may do nothing.
    assert me.placement == aula.Placement.LOBBY
    assert student.placement() == aula.Placement.LOBBY
    assert student.remote_participants() == []
    view = student.classroom()
    assert view.placement == aula.Placement.LOBBY
    assert view.permissions is not None and not view.permissions.chat
    assert view.permissions.publish == []
    assert view.classroom.settings.mode == aula.RoomMode.CLASS and view.classroom.settings.lobby
    assert view.classroom.teacher_present
    assert view.chat == []
    assert refused(lambda: student.send_chat(aula.ChatDraft(text="let me in"))) == aula.ErrorCode.CHAT_DISABLED
    assert refused(student.raise_hand) == aula.ErrorCode.INVALID_STATE

    # The teacher sees it waiting, and admits it.
    waiting = t_events.wait_for(
        lambda u: u.is_participant_joined() and u.participant.placement == aula.Placement.LOBBY,
        "the student in the lobby").participant
    assert (waiting.id, waiting.identity, waiting.role) == (me.id, "student", aula.ParticipantRole.STUDENT)
    teacher.admit(me.id)
    s_events.wait_for(lambda u: u.is_admitted(), "the admission")
    assert student.placement() == aula.Placement.AUDIENCE
    assert [p.identity for p in student.remote_participants()] == ["teacher"]
    s_events.wait_for(lambda u: u.is_permissions_changed() and u.permissions.chat, "audience permissions")
    assert refused(lambda: student.publish_synthetic_video(320, 180, 15, 0, "camera")) == \
        aula.ErrorCode.PERMISSION_DENIED

    # Typed refusals: a student may not run the class; the teacher's mistakes are named.
    assert refused(lambda: student.admit(teacher_id)) == aula.ErrorCode.PERMISSION_DENIED
    assert refused(lambda: student.lock_room(True)) == aula.ErrorCode.PERMISSION_DENIED
    assert refused(lambda: teacher.admit(me.id)) == aula.ErrorCode.INVALID_STATE
    assert refused(lambda: teacher.invite_to_stage("PA_nobody")) == aula.ErrorCode.UNKNOWN_PARTICIPANT
    assert refused(lambda: student.answer_stage_invitation(True)) == aula.ErrorCode.INVALID_STATE

    # A raised hand reaches the teacher, who dismisses it.
    student.raise_hand()
    hand = t_events.wait_for(lambda u: u.is_classroom_changed() and u.classroom.hands, "the hand")
    assert hand.classroom.hands == [me.id]
    assert student.classroom().hand_raised
    teacher.dismiss_hand(me.id)
    wait_until(lambda: not student.classroom().hand_raised)

    # The invitation, accepted: on stage, allowed a camera, and publishing.
    teacher.invite_to_stage(me.id)
    invitation = s_events.wait_for(lambda u: u.is_stage_invitation(), "the stage invitation")
    assert invitation.from_participant_id == teacher_id
    assert student.classroom().invitation_from == teacher_id
    student.answer_stage_invitation(True)
    answer = t_events.wait_for(lambda u: u.is_stage_invitation_answered(), "the answer")
    assert (answer.participant_id, answer.accepted) == (me.id, True)
    s_events.wait_for(
        lambda u: u.is_permissions_changed() and aula.TrackOrigin.CAMERA in u.permissions.publish,
        "permission to publish a camera")
    wait_until(lambda: student.placement() == aula.Placement.STAGE)
    assert student.classroom().invitation_from is None
    camera = student.publish_synthetic_video(320, 180, 15, 300_000, "camera")
    t_events.wait_for(
        lambda u: u.is_track_published() and u.participant_id == me.id and u.track.sid == camera.sid,
        "the student's camera at the teacher")

    # Chat both ways, with sequence numbers.
    welcome = teacher.send_chat(aula.ChatDraft(text="Welcome to class", announcement=True))
    assert welcome.seq >= 1 and welcome.kind == aula.ChatKind.ANNOUNCEMENT
    assert (welcome.from_identity, welcome.to_identity) == ("teacher", None)
    received = s_events.wait_for(lambda u: u.is_chat_received(), "the announcement").message
    assert received == welcome
    thanks = student.send_chat(aula.ChatDraft(text="Thank you", to_participant_id=teacher_id))
    assert thanks.seq > welcome.seq and thanks.to_identity == "teacher"
    at_teacher = t_events.wait_for(
        lambda u: u.is_chat_received() and u.message.seq == thanks.seq, "the reply").message
    assert (at_teacher.text, at_teacher.from_identity) == ("Thank you", "student")
    assert refused(lambda: student.send_chat(aula.ChatDraft(text="x" * 5000))) == aula.ErrorCode.MESSAGE_TOO_LARGE
    assert refused(lambda: student.send_chat(aula.ChatDraft(text="hi", announcement=True))) == \
        aula.ErrorCode.PERMISSION_DENIED
    page = student.chat_history()
    assert [m.seq for m in page.messages] == [welcome.seq, thanks.seq] and not page.more
    assert [m.seq for m in student.chat_history(before=thanks.seq, limit=1).messages] == [welcome.seq]
    assert [m.seq for m in student.classroom().chat] == [welcome.seq, thanks.seq]
    student.delete_chat(thanks.seq)
    t_events.wait_for(lambda u: u.is_chat_deleted() and u.seq == thanks.seq, "the deletion")

    # Moderation: a teacher's mute the student may not undo, the spotlight, settings.
    teacher.mute_all(aula.TrackKind.VIDEO, allow_unmute=False)
    muted = s_events.wait_for(lambda u: u.is_track_muted() and u.track_sid == camera.sid, "the mute")
    assert muted.muted and muted.by_moderator and muted.participant_id == me.id
    assert student.is_track_muted(camera.sid) is True
    assert refused(lambda: student.set_track_muted(camera.sid, False)) == aula.ErrorCode.PERMISSION_DENIED
    assert student.is_track_muted(camera.sid) is True, "a refused unmute leaves the track muted"
    teacher.spotlight(me.id)
    s_events.wait_for(lambda u: u.is_classroom_changed() and u.classroom.spotlight == me.id, "the spotlight")
    teacher.update_room_settings(aula.RoomSettingsPatch(chat=aula.ChatPolicy.TEACHERS))
    s_events.wait_for(
        lambda u: u.is_classroom_changed() and u.classroom.settings.chat == aula.ChatPolicy.TEACHERS,
        "the new chat policy")
    assert refused(lambda: student.send_chat(aula.ChatDraft(text="still there?"))) == aula.ErrorCode.CHAT_DISABLED

    # Removal: the student's room closes with the teacher's words; it cannot come back.
    teacher.remove_participant(me.id, "Please rejoin from your desk")
    bye = s_events.wait_for(lambda u: u.is_disconnected(), "the removal")
    assert bye.cause == aula.LeaveReason.REMOVED and not bye.client_request
    assert bye.message == "Please rejoin from your desk"
    left = t_events.wait_for(lambda u: u.is_participant_left() and u.participant_id == me.id, "the student gone")
    assert left.cause == aula.LeaveReason.REMOVED
    assert not student.is_connected()
    with pytest.raises(aula.AulaError.Disconnected):
        student.raise_hand()
    assert refused(lambda: aula.connect(
        server_url, mint_token("py-class", "student", "student", classroom=CLASS), options)) == aula.ErrorCode.REMOVED

    s_sub.cancel()
    t_sub.cancel()
    teacher.disconnect()


def test_classroom_arguments_are_checked_before_the_network(server_url):
    room = aula.connect(server_url, mint_token("py-args", "teacher", "teacher"), aula.default_connect_options())
    try:
        # A plain call: everyone on stage, the classroom view still answers.
        assert room.placement() == aula.Placement.STAGE
        assert room.classroom().classroom.settings.mode == aula.RoomMode.CALL
        with pytest.raises(aula.AulaError.InvalidArgument):
            room.mute_all(aula.TrackKind.UNKNOWN)
        with pytest.raises(aula.AulaError.InvalidArgument):
            room.update_permissions("PA_x", aula.PermissionsPatch(publish=[aula.TrackOrigin.UNKNOWN]))
        with pytest.raises(aula.AulaError.InvalidArgument):
            room.set_track_muted("TR_nope", True)
        assert room.is_track_muted("TR_nope") is None
    finally:
        room.disconnect()
    with pytest.raises(aula.AulaError.Disconnected):
        room.classroom()


def test_deny_lock_admit_all_the_stage_co_teacher_and_end_class(server_url):
    options = aula.default_connect_options()
    options.reconnect = False
    teacher, t_events, t_sub = join(server_url, "teacher", "teacher", options)
    ana, a_events, a_sub = join(server_url, "ana", "student", options)
    ben, b_events, b_sub = join(server_url, "ben", "student", options)
    ana_id, ben_id = ana.local_participant().id, ben.local_participant().id
    for who in (ana_id, ben_id):
        t_events.wait_for(lambda u, who=who: u.is_participant_joined() and u.participant.id == who,
                          f"{who} in the lobby")

    # Denied: the student's room closes with the teacher's words.
    teacher.deny(ben_id, "Not on the list today")
    bye = b_events.wait_for(lambda u: u.is_disconnected(), "the denial")
    assert bye.cause == aula.LeaveReason.DENIED and not bye.client_request
    assert bye.message == "Not on the list today"
    assert not ben.is_connected()
    assert refused(lambda: teacher.deny(ben_id, "again")) == aula.ErrorCode.UNKNOWN_PARTICIPANT

    # Locked: nobody new gets in; unlocked, they wait in the lobby again.
    teacher.lock_room(True)
    t_events.wait_for(lambda u: u.is_classroom_changed() and u.classroom.locked, "the lock")
    assert refused(lambda: aula.connect(
        server_url, mint_token("py-class", "cleo", "student", classroom=CLASS), options)) == aula.ErrorCode.ROOM_LOCKED
    teacher.lock_room(False)
    cleo, c_events, c_sub = join(server_url, "cleo", "student", options)
    cleo_id = cleo.local_participant().id
    assert cleo.placement() == aula.Placement.LOBBY

    # Everyone in the lobby at once.
    teacher.admit_all()
    a_events.wait_for(lambda u: u.is_admitted(), "ana's admission")
    c_events.wait_for(lambda u: u.is_admitted(), "cleo's admission")
    assert ana.placement() == cleo.placement() == aula.Placement.AUDIENCE

    # A raised hand goes up at once when invited; a hand lowered by its owner.
    ana.raise_hand()
    wait_until(lambda: ana.classroom().hand_raised)
    ana.lower_hand()
    wait_until(lambda: not ana.classroom().hand_raised)
    ana.raise_hand()
    t_events.wait_for(lambda u: u.is_classroom_changed() and ana_id in u.classroom.hands, "ana's hand")
    teacher.invite_to_stage(ana_id)
    wait_until(lambda: ana.placement() == aula.Placement.STAGE)
    assert not ana.classroom().hand_raised

    # The stage: moved down, cleared, and left by the student, whose camera the server ends.
    teacher.move_to_audience(ana_id)
    wait_until(lambda: ana.placement() == aula.Placement.AUDIENCE)
    assert refused(lambda: teacher.move_to_audience(ana_id)) == aula.ErrorCode.INVALID_STATE
    teacher.invite_to_stage(ana_id)
    ana.answer_stage_invitation(True)
    wait_until(lambda: ana.placement() == aula.Placement.STAGE)
    teacher.clear_stage()
    wait_until(lambda: ana.placement() == aula.Placement.AUDIENCE)
    teacher.invite_to_stage(ana_id)
    ana.answer_stage_invitation(True)
    a_events.wait_for(
        lambda u: u.is_permissions_changed() and aula.TrackOrigin.MICROPHONE in u.permissions.publish,
        "permission to publish a microphone")
    microphone = ana.publish_synthetic_audio(440.0, "microphone")
    t_events.wait_for(lambda u: u.is_track_published() and u.track.sid == microphone.sid, "ana's microphone")
    teacher.mute_participant(ana_id, aula.TrackKind.AUDIO)
    muted = a_events.wait_for(lambda u: u.is_track_muted() and u.track_sid == microphone.sid, "the mute")
    assert muted.muted and muted.by_moderator
    assert refused(lambda: teacher.stop_screen_share(ana_id)) == aula.ErrorCode.INVALID_STATE
    ana.leave_stage()
    ended = a_events.wait_for(lambda u: u.is_local_track_ended(), "the microphone ended")
    assert ended.track_sid == microphone.sid
    assert ana.placement() == aula.Placement.AUDIENCE

    # What one student may do: chat taken away, and given back.
    teacher.update_permissions(ana_id, aula.PermissionsPatch(chat=False))
    a_events.wait_for(lambda u: u.is_permissions_changed() and not u.permissions.chat, "chat taken away")
    assert refused(lambda: ana.send_chat(aula.ChatDraft(text="hello?"))) == aula.ErrorCode.CHAT_DISABLED
    teacher.update_permissions(ana_id, aula.PermissionsPatch(chat=True))
    a_events.wait_for(lambda u: u.is_permissions_changed() and u.permissions.chat, "chat given back")
    ana.send_chat(aula.ChatDraft(text="hello!"))

    # A co-teacher goes on stage and may moderate; the spotlight goes off again.
    teacher.set_co_teacher(cleo_id, True)
    c_events.wait_for(
        lambda u: u.is_participant_updated() and u.participant.id == cleo_id and u.participant.co_teacher,
        "cleo made co-teacher")
    wait_until(lambda: cleo.classroom().co_teacher and cleo.placement() == aula.Placement.STAGE)
    c_events.wait_for(lambda u: u.is_permissions_changed() and u.permissions.moderate, "cleo may moderate")
    cleo.spotlight(ana_id)
    a_events.wait_for(lambda u: u.is_classroom_changed() and u.classroom.spotlight == ana_id, "the spotlight")
    teacher.spotlight(None)
    a_events.wait_for(lambda u: u.is_classroom_changed() and u.classroom.spotlight is None, "no spotlight")

    # The end of the class closes every room, the teacher's too.
    teacher.end_class()
    for events, who in ((a_events, "ana"), (c_events, "cleo"), (t_events, "teacher")):
        end = events.wait_for(lambda u: u.is_disconnected(), f"the end of class at {who}")
        assert end.cause == aula.LeaveReason.CLASS_ENDED, who
    assert not (teacher.is_connected() or ana.is_connected() or cleo.is_connected())

    for sub in (a_sub, b_sub, c_sub, t_sub):
        sub.cancel()
