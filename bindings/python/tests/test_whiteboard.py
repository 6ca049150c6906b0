"""The shared whiteboard from Python, through a real aula-server: two teachers draw and their
replicas converge, undo only takes back one's own edits, a student without the write grant is
refused, exports, laser pointers, and calls after the room is gone."""

import gc
import threading
import time

import pytest

import aula
from conftest import mint_token

PAGE = "1"


def token(room, identity, role):
    return mint_token(room, identity, role)


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def points(seed, n):
    # Values exact in f32, so what comes back compares equal to what went in.
    return [aula.Point(x=float(seed * 10 + i), y=float(seed + 2 * i), pressure=0.25 + i / 8) for i in range(n)]


class Events(aula.WhiteboardListener):
    """Keeps every board event."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def on_event(self, event):
        with self.lock:
            self.events.append(event)

    def remote_ids(self):
        with self.lock:
            return {r.id for e in self.events if e.is_changed() and e.remote for r in e.items if r.id}

    def refusals(self):
        with self.lock:
            return [e for e in self.events if e.is_refused()]

    def acks(self):
        with self.lock:
            return [e.seq for e in self.events if e.is_acked()]


def join(url, room, identity, role):
    joined = aula.connect(url, token(room, identity, role), aula.default_connect_options())
    board = joined.whiteboard()
    events = Events()
    subscription = board.add_listener(events)
    # A new board gets its first page from the server: draw once it is there.
    assert wait_until(lambda: board.pages() == [PAGE]), board.pages()
    return joined, board, events, subscription


def snapshot(board):
    return [(i.id, i.kind, i.author, i.color, i.x, i.y, i.w, i.h, i.text, i.points) for i in board.items(PAGE)]


def test_two_teachers_converge_and_undo_only_their_own_edits(server_url):
    alice_room, alice, alice_events, alice_sub = join(server_url, "py-board", "alice", aula.ParticipantRole.TEACHER)
    bob_room, bob, bob_events, bob_sub = join(server_url, "py-board", "bob", aula.ParticipantRole.TEACHER)
    assert alice.default_page() == PAGE

    stroke = alice.add_stroke(PAGE, "#e53935", 3.0, points(1, 4))
    alice.extend_stroke(PAGE, stroke, points(2, 3))
    rect = bob.add_item(PAGE, aula.NewItem(kind=aula.ItemKind.RECT, color="#1e88e5", width=2.0, x=100.0, y=120.0, w=60.0, h=40.0))
    label = bob.add_item(PAGE, aula.NewItem(kind=aula.ItemKind.TEXT, color="#000000", width=16.0, x=10.0, y=300.0, w=0.0, h=0.0, text="x < y"))
    arrow = alice.add_item(PAGE, aula.NewItem(kind=aula.ItemKind.ARROW, color="#43a047", width=2.0, x=5.0, y=5.0, w=50.0, h=0.0))

    # Both replicas converge on the same four items, each as drawn.
    assert wait_until(lambda: alice.item_count() == 4 and bob.item_count() == 4)
    assert wait_until(lambda: alice.unacked() == 0 and bob.unacked() == 0)
    assert wait_until(lambda: alice.digest() == bob.digest())
    assert snapshot(alice) == snapshot(bob)
    by_id = {i.id: i for i in bob.items(PAGE)}
    assert by_id[stroke].points == points(1, 4) + points(2, 3), "both chunks arrive, in order, with their pressure"
    assert by_id[stroke].author == "alice" and by_id[stroke].kind == aula.ItemKind.STROKE
    assert by_id[label].text == "x < y" and by_id[label].kind == aula.ItemKind.TEXT
    assert (by_id[rect].w, by_id[rect].h) == (60.0, 40.0)
    # Each side's listener heard about the other's items, and the server acknowledged edits.
    assert wait_until(lambda: {stroke, arrow} <= bob_events.remote_ids())
    assert wait_until(lambda: {rect, label} <= alice_events.remote_ids())
    assert alice_events.acks() and bob_events.acks()

    # Move and recolour reach the other side.
    bob.move_item(PAGE, rect, 10.0, -20.0)
    alice.recolor(PAGE, stroke, "#000000")
    assert wait_until(lambda: {i.id: (i.x, i.y) for i in alice.items(PAGE)}[rect] == (110.0, 100.0))
    assert wait_until(lambda: {i.id: i.color for i in bob.items(PAGE)}[stroke] == "#000000")

    # Undo takes back only one's own edits: alice's recolour, then her arrow, then her stroke.
    assert alice.undo()
    assert wait_until(lambda: {i.id: i.color for i in bob.items(PAGE)}[stroke] == "#e53935")
    assert alice.undo() and alice.undo()
    assert not alice.undo(), "bob's items are not alice's to undo"
    assert wait_until(lambda: sorted(i.id for i in bob.items(PAGE)) == sorted([rect, label]))
    assert sorted(i.id for i in alice.items(PAGE)) == sorted([rect, label])
    assert alice.redo()
    assert wait_until(lambda: bob.has_item(PAGE, stroke))
    assert len({i.id: i for i in bob.items(PAGE)}[stroke].points) == 7, "the stroke and its extension are one step"

    # Erase and clear.
    bob.erase(PAGE, label)
    assert wait_until(lambda: not alice.has_item(PAGE, label))
    assert alice.clear_page(PAGE) == 2
    assert wait_until(lambda: bob.item_count() == 0)
    assert wait_until(lambda: alice.digest() == bob.digest())

    alice_sub.cancel()
    bob_sub.cancel()
    alice_room.disconnect()
    bob_room.disconnect()


def test_exports_and_laser_pointers(server_url):
    teacher_room, teacher, _, teacher_sub = join(server_url, "py-export", "teacher", aula.ParticipantRole.TEACHER)
    student_room, student, student_events, student_sub = join(server_url, "py-export", "student", aula.ParticipantRole.STUDENT)
    teacher.add_stroke(PAGE, "#ff0000", 4.0, [aula.Point(x=10.0, y=10.0, pressure=1.0), aula.Point(x=90.0, y=90.0, pressure=1.0)])
    assert wait_until(lambda: student.item_count() == 1)
    svg = student.export_svg(PAGE, 100.0, 100.0)
    assert svg.startswith("<svg") and '<path d="M10.00 10.00 L90.00 90.00"' in svg and 'stroke="#ff0000"' in svg
    png = student.export_png(PAGE, 100, 100)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(aula.AulaError.InvalidArgument):
        student.export_png(PAGE, 100_000, 10)

    teacher.set_laser(aula.Laser(page=PAGE, x=30.0, y=40.0))
    assert wait_until(lambda: student.lasers() == [aula.LaserPointer(identity="teacher", laser=aula.Laser(page=PAGE, x=30.0, y=40.0))])
    assert wait_until(lambda: any(e.is_presence() for e in list(student_events.events)))
    teacher.set_laser(None)
    assert wait_until(lambda: student.lasers() == [])

    teacher_sub.cancel()
    student_sub.cancel()
    teacher_room.disconnect()
    student_room.disconnect()


def test_a_student_without_the_write_grant_is_refused(server_url):
    teacher_room, teacher, _, teacher_sub = join(server_url, "py-refused", "teacher", aula.ParticipantRole.TEACHER)
    student_room, student, events, student_sub = join(server_url, "py-refused", "student", aula.ParticipantRole.STUDENT)
    kept = teacher.add_stroke(PAGE, "#000000", 1.0, points(1, 3))
    assert wait_until(lambda: student.has_item(PAGE, kept))

    # The edit applies locally first (on loopback the refusal may already have undone it).
    refused = student.add_stroke(PAGE, "#000000", 1.0, points(2, 3))
    assert wait_until(lambda: events.refusals())
    refusal = events.refusals()[0]
    assert refusal.code == "permission_denied" and "whiteboard_write" in refusal.message
    # The replica reloads from the server: the refused stroke is gone, the teacher's is back.
    assert wait_until(lambda: not student.has_item(PAGE, refused) and student.has_item(PAGE, kept))
    time.sleep(0.3)
    assert not teacher.has_item(PAGE, refused), "nobody else ever sees it"
    assert [i.id for i in teacher.items(PAGE)] == [kept]

    student_sub.cancel()
    teacher_sub.cancel()
    teacher_room.disconnect()
    student_room.disconnect()


def test_calls_fail_cleanly_once_the_room_is_gone(server_url):
    room, board, events, subscription = join(server_url, "py-board-closed", "alice", aula.ParticipantRole.TEACHER)
    with pytest.raises(aula.AulaError.InvalidArgument):
        board.extend_stroke(PAGE, "no-such-stroke", points(1, 2))
    with pytest.raises(aula.AulaError.InvalidArgument):
        board.move_item(PAGE, "no-such-item", 1.0, 1.0)
    stroke = board.add_stroke(PAGE, "#000000", 1.0, points(1, 2))
    assert wait_until(lambda: board.unacked() == 0 and events.acks())

    # A cancelled subscription hears nothing more.
    time.sleep(0.1)
    subscription.cancel()
    subscription.cancel()  # idempotent
    heard = len(events.events)
    board.recolor(PAGE, stroke, "#ffffff")
    time.sleep(0.3)
    assert len(events.events) == heard

    room.disconnect()
    for call in (
        lambda: board.add_stroke(PAGE, "#000000", 1.0, points(1, 2)),
        lambda: board.items(PAGE),
        lambda: board.undo(),
        lambda: board.export_svg(PAGE, 10.0, 10.0),
        lambda: board.set_laser(None),
        lambda: board.add_listener(Events()),
        lambda: room.whiteboard(),
    ):
        with pytest.raises(aula.AulaError.Disconnected):
            call()

    # A board handle does not keep its room alive; once the room is released, calls fail too.
    room2, board2, _, sub2 = join(server_url, "py-board-closed", "bob", aula.ParticipantRole.TEACHER)
    del room2
    gc.collect()
    with pytest.raises(aula.AulaError.Disconnected):
        board2.items(PAGE)
    del sub2


def test_a_listener_that_raises_does_not_stop_the_others(server_url):
    room, board, events, subscription = join(server_url, "py-board-raise", "alice", aula.ParticipantRole.TEACHER)
    calls = []

    class Raising(aula.WhiteboardListener):
        def on_event(self, event):
            calls.append(event)
            raise RuntimeError("a bug in the app's listener")

    raising = board.add_listener(Raising())
    first = board.add_stroke(PAGE, "#000000", 1.0, points(1, 2))
    second = board.add_stroke(PAGE, "#000000", 1.0, points(2, 2))
    # Both listeners keep hearing about every edit after the first exception.
    assert wait_until(lambda: board.unacked() == 0 and len(events.acks()) >= 2)
    assert wait_until(lambda: len(calls) >= 4), len(calls)
    with events.lock:
        local = [e for e in events.events if e.is_changed() and not e.remote]
    assert {r.id for e in local for r in e.items} >= {first, second}
    raising.cancel()
    subscription.cancel()
    room.disconnect()
