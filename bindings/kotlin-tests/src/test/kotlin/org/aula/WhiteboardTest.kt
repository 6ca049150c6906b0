package org.aula

import java.net.DatagramSocket
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

private const val PAGE = "1"

/** The shared whiteboard from Kotlin through a real aula-server and the generated bindings. */
class WhiteboardTest {
    private lateinit var server: Process
    private lateinit var url: String

    @BeforeEach
    fun startServer() {
        val binary = System.getProperty("aula.server") ?: error("aula.server not set")
        val port = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }
        val rtcPort = DatagramSocket(0, InetAddress.getLoopbackAddress()).use { it.localPort }
        server = ProcessBuilder(binary, "--dev", "--listen", "127.0.0.1:$port", "--rtc-port", "$rtcPort")
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20)
        while (true) {
            check(server.isAlive) { "aula-server exited with ${server.exitValue()}" }
            try {
                Socket().use { it.connect(InetSocketAddress("127.0.0.1", port), 200) }
                break
            } catch (e: java.io.IOException) {
                check(System.nanoTime() < deadline) { "aula-server did not start listening" }
                Thread.sleep(50)
            }
        }
        url = "ws://127.0.0.1:$port"
    }

    @AfterEach
    fun stopServer() {
        server.destroy()
        if (!server.waitFor(10, TimeUnit.SECONDS)) server.destroyForcibly().waitFor()
    }

    private fun waitUntil(what: String, timeoutMs: Long = 10_000, predicate: () -> Boolean) {
        val deadline = System.currentTimeMillis() + timeoutMs
        while (!predicate()) {
            check(System.currentTimeMillis() < deadline) { "timed out waiting for $what" }
            Thread.sleep(20)
        }
    }

    /** Values exact in Float, so what comes back compares equal to what went in. */
    private fun points(seed: Int, n: Int) =
        List(n) { i -> Point((seed * 10 + i).toFloat(), (seed + 2 * i).toFloat(), 0.25f + i / 8f) }

    /** Keeps every board event. */
    private class Events : WhiteboardListener {
        val events = CopyOnWriteArrayList<WhiteboardEvent>()

        override fun onEvent(event: WhiteboardEvent) {
            events.add(event)
        }

        fun remoteIds(): Set<String> = events.filterIsInstance<WhiteboardEvent.Changed>()
            .filter { it.remote }
            .flatMap { change -> change.items.mapNotNull { it.id } }
            .toSet()

        fun refusals() = events.filterIsInstance<WhiteboardEvent.Refused>()

        fun acks() = events.filterIsInstance<WhiteboardEvent.Acked>()
    }

    /** A participant: the room, its board, what its listener heard, and the subscription. */
    private class Member(val room: AulaRoom, val board: Whiteboard, val events: Events, val subscription: Subscription) :
        AutoCloseable {
        override fun close() {
            subscription.close()
            board.close()
            room.disconnect()
            room.close()
        }
    }

    private fun join(roomName: String, identity: String, role: ParticipantRole): Member {
        val token = DevTokens.mint(roomName, identity, role)
        val room = connect(url, token, defaultConnectOptions())
        val board = room.whiteboard()
        val events = Events()
        val subscription = board.addListener(events)
        // A new board gets its first page from the server: draw once it is there.
        waitUntil("the first page") { board.pages() == listOf(PAGE) }
        return Member(room, board, events, subscription)
    }

    private fun snapshot(board: Whiteboard) = board.items(PAGE)

    @Test
    fun twoParticipantsConvergeAndUndoOnlyTheirOwnEdits() {
        join("kt-board", "alice", ParticipantRole.TEACHER).use { a ->
            join("kt-board", "bob", ParticipantRole.TEACHER).use { b ->
                val alice = a.board
                val bob = b.board
                val stroke = alice.addStroke(PAGE, "#e53935", 3.0, points(1, 4))
                alice.extendStroke(PAGE, stroke, points(2, 3))
                val ellipse = bob.addItem(PAGE, NewItem(ItemKind.ELLIPSE, "#1e88e5", 2.0, 100.0, 120.0, 60.0, 40.0))
                val label = bob.addItem(
                    PAGE,
                    NewItem(kind = ItemKind.TEXT, color = "#000000", width = 16.0, x = 10.0, y = 300.0, w = 0.0, h = 0.0, text = "Kotlin"),
                )
                val line = alice.addItem(PAGE, NewItem(ItemKind.LINE, "#43a047", 2.0, 5.0, 5.0, 50.0, 0.0))

                // Both replicas converge on the same four items, each as drawn.
                waitUntil("four items on both") { alice.itemCount() == 4uL && bob.itemCount() == 4uL }
                waitUntil("every edit acknowledged") { alice.unacked() == 0uL && bob.unacked() == 0uL }
                waitUntil("equal digests") { alice.digest() == bob.digest() }
                assertEquals(snapshot(alice), snapshot(bob))
                val byId = bob.items(PAGE).associateBy { it.id }
                assertEquals(points(1, 4) + points(2, 3), byId.getValue(stroke).points, "both chunks, in order, with pressure")
                assertEquals("alice", byId.getValue(stroke).author)
                assertEquals(ItemKind.STROKE, byId.getValue(stroke).kind)
                assertEquals("Kotlin", byId.getValue(label).text)
                assertEquals(ItemKind.ELLIPSE, byId.getValue(ellipse).kind)
                assertEquals(50.0, byId.getValue(line).w)
                waitUntil("bob hears alice's items") { b.events.remoteIds().containsAll(listOf(stroke, line)) }
                waitUntil("alice hears bob's items") { a.events.remoteIds().containsAll(listOf(ellipse, label)) }
                assertTrue(a.events.acks().isNotEmpty() && b.events.acks().isNotEmpty())

                // Move and recolour cross over.
                bob.moveItem(PAGE, ellipse, -10.0, 5.0)
                alice.recolor(PAGE, stroke, "#000000")
                waitUntil("the move at alice") { alice.items(PAGE).single { it.id == ellipse }.x == 90.0 }
                waitUntil("the recolour at bob") { bob.items(PAGE).single { it.id == stroke }.color == "#000000" }

                // Undo takes back alice's own edits only: recolour, line, stroke; then nothing.
                assertTrue(alice.undo())
                waitUntil("the undone recolour at bob") { bob.items(PAGE).single { it.id == stroke }.color == "#e53935" }
                assertTrue(alice.undo())
                assertTrue(alice.undo())
                assertFalse(alice.undo(), "bob's items are not alice's to undo")
                waitUntil("only bob's items left at bob") { bob.items(PAGE).map { it.id }.toSet() == setOf(ellipse, label) }
                assertEquals(setOf(ellipse, label), alice.items(PAGE).map { it.id }.toSet())
                assertTrue(alice.redo())
                waitUntil("the redone stroke at bob") { bob.hasItem(PAGE, stroke) }
                assertEquals(7, bob.items(PAGE).single { it.id == stroke }.points.size, "stroke and extension are one step")

                // Erase and clear.
                alice.erase(PAGE, stroke)
                waitUntil("the erase at bob") { !bob.hasItem(PAGE, stroke) }
                bob.clearPage(PAGE)
                waitUntil("an empty page at alice") { alice.itemCount() == 0uL }
            }
        }
    }

    @Test
    fun aStudentWithoutTheWriteGrantIsRefused() {
        join("kt-refused", "teacher", ParticipantRole.TEACHER).use { teacher ->
            join("kt-refused", "student", ParticipantRole.STUDENT).use { student ->
                val kept = teacher.board.addStroke(PAGE, "#000000", 1.0, points(1, 3))
                waitUntil("the teacher's stroke at the student") { student.board.hasItem(PAGE, kept) }

                val refused = student.board.addStroke(PAGE, "#000000", 1.0, points(2, 3))
                waitUntil("the refusal") { student.events.refusals().isNotEmpty() }
                val refusal = student.events.refusals().first()
                assertEquals("permission_denied", refusal.code)
                assertTrue("whiteboard_write" in refusal.message, refusal.message)
                // The replica reloads from the server: the refused stroke is gone, the teacher's is back.
                waitUntil("the reload") { !student.board.hasItem(PAGE, refused) && student.board.hasItem(PAGE, kept) }
                Thread.sleep(300)
                assertEquals(listOf(kept), teacher.board.items(PAGE).map { it.id }, "nobody else sees it")

                // Exports and laser pointers from the reading side.
                val svg = student.board.exportSvg(PAGE, 200.0, 100.0)
                assertTrue(svg.startsWith("<svg") && "<path d=\"M10.00 1.00 L11.00 3.00" in svg, svg)
                val png = student.board.exportPng(PAGE, 200u, 100u)
                assertEquals(listOf(0x89, 0x50, 0x4e, 0x47), png.take(4).map { it.toInt() and 0xff })
                assertThrows<AulaException.InvalidArgument> { student.board.exportPng(PAGE, 0u, 0u) }
                teacher.board.setLaser(Laser(PAGE, 30.0, 40.0))
                waitUntil("the pointer at the student") {
                    student.board.lasers() == listOf(LaserPointer("teacher", Laser(PAGE, 30.0, 40.0)))
                }
                waitUntil("a presence event") { student.events.events.any { it is WhiteboardEvent.Presence } }
            }
        }
    }

    @Test
    fun callsFailCleanlyOnceTheRoomIsGone() {
        val member = join("kt-board-closed", "alice", ParticipantRole.TEACHER)
        val board = member.board
        assertThrows<AulaException.InvalidArgument> { board.extendStroke(PAGE, "no-such-stroke", points(1, 2)) }
        val stroke = board.addStroke(PAGE, "#000000", 1.0, points(1, 2))
        waitUntil("the stroke acknowledged") { board.unacked() == 0uL && member.events.acks().isNotEmpty() }

        // A closed subscription hears nothing more.
        Thread.sleep(100)
        member.subscription.close()
        val heard = member.events.events.size
        board.recolor(PAGE, stroke, "#ffffff")
        Thread.sleep(300)
        assertEquals(heard, member.events.events.size)

        member.room.disconnect()
        assertThrows<AulaException.Disconnected> { board.addStroke(PAGE, "#000000", 1.0, points(1, 2)) }
        assertThrows<AulaException.Disconnected> { board.items(PAGE) }
        assertThrows<AulaException.Disconnected> { board.undo() }
        assertThrows<AulaException.Disconnected> { board.exportPng(PAGE, 10u, 10u) }
        assertThrows<AulaException.Disconnected> { board.setLaser(null) }
        assertThrows<AulaException.Disconnected> { board.addListener(Events()) }
        assertThrows<AulaException.Disconnected> { member.room.whiteboard() }

        // A board does not keep its room alive: once the room object is closed, calls fail too.
        val other = join("kt-board-closed", "bob", ParticipantRole.TEACHER)
        assertNotEquals(0uL, other.board.pages().size.toULong())
        other.room.close()
        assertThrows<AulaException.Disconnected> { other.board.items(PAGE) }
        other.subscription.close()
        other.board.close()
        board.close()
        member.room.close()
    }
}
