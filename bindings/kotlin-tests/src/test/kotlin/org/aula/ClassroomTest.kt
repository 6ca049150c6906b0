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
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

private const val CLASS = """{"mode":"class","lobby":true}"""

/**
 * A class through a real aula-server, driven from Kotlin: the lobby, admission, the stage,
 * chat, typed refusals, a denial and the end of the class.
 */
class ClassroomTest {
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

    /** Keeps a room's updates and waits for one. */
    private class Updates : RoomListener {
        val updates = CopyOnWriteArrayList<RoomUpdate>()

        override fun onUpdate(update: RoomUpdate) {
            updates.add(update)
        }

        inline fun <reified T : RoomUpdate> await(what: String, crossinline predicate: (T) -> Boolean = { true }): T {
            val deadline = System.currentTimeMillis() + 20_000
            while (true) {
                updates.filterIsInstance<T>().firstOrNull { predicate(it) }?.let { return it }
                check(System.currentTimeMillis() < deadline) { "timed out waiting for $what" }
                Thread.sleep(20)
            }
        }
    }

    private fun waitUntil(what: String, predicate: () -> Boolean) {
        val deadline = System.currentTimeMillis() + 20_000
        while (!predicate()) {
            check(System.currentTimeMillis() < deadline) { "timed out waiting for $what" }
            Thread.sleep(20)
        }
    }

    private fun refusal(call: () -> Unit): ErrorCode = assertThrows<AulaException.Refused> { call() }.code

    private fun join(identity: String, role: ParticipantRole): Pair<AulaRoom, Updates> {
        val options = defaultConnectOptions().copy(reconnect = false)
        val room = connect(url, DevTokens.mint("kt-class", identity, role, classroomJson = CLASS), options)
        val updates = Updates()
        room.addListener(updates)
        return room to updates
    }

    @Test
    fun aStudentIsAdmittedChatsAndALatecomerIsDenied() {
        val (teacher, tUpdates) = join("teacher", ParticipantRole.TEACHER)
        val (student, sUpdates) = join("student", ParticipantRole.STUDENT)
        val studentId = student.localParticipant().id

        // The lobby: nothing but waiting.
        assertEquals(Placement.LOBBY, student.placement())
        assertEquals(RoomMode.CLASS, student.classroom().classroom.settings.mode)
        assertEquals(ErrorCode.CHAT_DISABLED, refusal { student.sendChat(ChatDraft("let me in")) })
        assertEquals(ErrorCode.INVALID_STATE, refusal { student.raiseHand() })
        assertEquals(ErrorCode.PERMISSION_DENIED, refusal { student.admit(studentId) })

        tUpdates.await<RoomUpdate.ParticipantJoined>("the student in the lobby") {
            it.participant.id == studentId && it.participant.placement == Placement.LOBBY
        }
        teacher.admit(studentId)
        sUpdates.await<RoomUpdate.Admitted>("the admission")
        assertEquals(Placement.AUDIENCE, student.placement())

        // A raised hand goes up to the stage when invited.
        student.raiseHand()
        tUpdates.await<RoomUpdate.ClassroomChanged>("the hand") { studentId in it.classroom.hands }
        teacher.inviteToStage(studentId)
        waitUntil("the student on stage") { student.placement() == Placement.STAGE }

        // Chat both ways.
        val welcome = teacher.sendChat(ChatDraft("Welcome to class", announcement = true))
        assertEquals(ChatKind.ANNOUNCEMENT, welcome.kind)
        val received = sUpdates.await<RoomUpdate.ChatReceived>("the announcement") { it.message.seq == welcome.seq }
        assertEquals(welcome, received.message)
        val thanks = student.sendChat(ChatDraft("Thank you", toParticipantId = teacher.localParticipant().id))
        assertTrue(thanks.seq > welcome.seq)
        val atTeacher = tUpdates.await<RoomUpdate.ChatReceived>("the reply") { it.message.seq == thanks.seq }
        assertEquals("Thank you", atTeacher.message.text)
        assertEquals(listOf(welcome.seq, thanks.seq), student.chatHistory().messages.map { it.seq })

        // A latecomer, denied from the lobby, hears why.
        val (latecomer, lUpdates) = join("latecomer", ParticipantRole.STUDENT)
        val latecomerId = latecomer.localParticipant().id
        tUpdates.await<RoomUpdate.ParticipantJoined>("the latecomer in the lobby") { it.participant.id == latecomerId }
        teacher.deny(latecomerId, "The class is full today")
        val denied = lUpdates.await<RoomUpdate.Disconnected>("the denial")
        assertEquals(LeaveReason.DENIED, denied.cause)
        assertEquals("The class is full today", denied.message)
        assertFalse(latecomer.isConnected())
        assertTrue(lUpdates.updates.none { it is RoomUpdate.Admitted })

        // The end of the class closes the student's room too.
        teacher.endClass()
        val ended = sUpdates.await<RoomUpdate.Disconnected>("the end of the class")
        assertEquals(LeaveReason.CLASS_ENDED, ended.cause)
        assertThrows<AulaException.Disconnected> { student.raiseHand() }
        assertNotNull(tUpdates.await<RoomUpdate.Disconnected>("the teacher's room closed"))

        for (room in listOf(latecomer, student, teacher)) {
            room.disconnect()
            room.close()
        }
    }
}
