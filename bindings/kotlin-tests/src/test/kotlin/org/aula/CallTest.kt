package org.aula

import java.net.DatagramSocket
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

private const val WIDTH = 320u
private const val HEIGHT = 180u
private const val FPS = 15u
private const val STAMP_TIME_MASK = (1L shl 48) - 1

/** Two participants through a real aula-server, driven from Kotlin through the generated bindings. */
class CallTest {
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

    private fun token(room: String, identity: String, role: ParticipantRole = ParticipantRole.STUDENT) =
        DevTokens.mint(room, identity, role)

    private fun waitUntil(timeoutMs: Long, predicate: () -> Boolean): Boolean {
        val deadline = System.currentTimeMillis() + timeoutMs
        while (System.currentTimeMillis() < deadline) {
            if (predicate()) return true
            Thread.sleep(50)
        }
        return predicate()
    }

    /** Keeps decoded stamps and room updates. */
    private class Collector : VideoFrameSink, RoomListener {
        val stamps = CopyOnWriteArrayList<Stamp>()
        val sizes = ConcurrentHashMap.newKeySet<Triple<UInt, UInt, Int>>()
        val updates = CopyOnWriteArrayList<RoomUpdate>()

        override fun onVideoFrame(participantId: String, trackSid: String, frame: DecodedVideoFrame) {
            sizes.add(Triple(frame.width, frame.height, frame.data.size))
            frame.stamp?.let { stamps.add(it) }
        }

        override fun onUpdate(update: RoomUpdate) {
            updates.add(update)
        }
    }

    @Test
    fun appFramesArriveWithTheirStamps() {
        val teacher = connect(url, token("kt-call", "teacher", ParticipantRole.TEACHER), defaultConnectOptions())
        val student = connect(url, token("kt-call", "student"), defaultConnectOptions())
        val seen = Collector()
        val subscription = student.addListener(seen)
        student.setVideoSink(seen)

        val publisher = teacher.publishAppVideo(WIDTH, HEIGHT, FPS, 300_000u, TrackOrigin.CAMERA, "kotlin-camera")
        assertEquals(WIDTH, publisher.track().width)

        val sent = ConcurrentHashMap<UInt, Long>()
        val pusher = Thread {
            var sequence = 7000u
            while (!Thread.currentThread().isInterrupted) {
                val now = System.currentTimeMillis() * 1000
                val stamp = Stamp(sequence, now.toULong())
                publisher.pushI420(stampedI420Frame(WIDTH, HEIGHT, stamp), now.toULong())
                sent[sequence] = now and STAMP_TIME_MASK
                sequence++
                try {
                    Thread.sleep(1000L / FPS.toLong())
                } catch (e: InterruptedException) {
                    break
                }
            }
        }
        pusher.start()
        try {
            assertTrue(waitUntil(20_000) { seen.stamps.size >= 20 }, "only ${seen.stamps.size} stamped frames")
        } finally {
            pusher.interrupt()
            pusher.join()
        }

        for (stamp in seen.stamps) {
            assertEquals(sent[stamp.sequence], stamp.captureTimeUs.toLong(), "stamp $stamp was not sent")
        }
        assertTrue(seen.stamps.map { it.sequence }.toSet().size >= 10, "distinct frames expected")
        assertEquals(setOf(Triple(WIDTH, HEIGHT, (WIDTH * HEIGHT * 3u / 2u).toInt())), seen.sizes.toSet())
        assertTrue(seen.updates.any { it is RoomUpdate.TrackPublished && it.track.name == "kotlin-camera" })

        val received = student.stats().received.filter { it.kind == TrackKind.VIDEO }
        assertTrue(received.isNotEmpty() && received[0].framesStampedOk >= 20uL && received[0].fromIdentity == "teacher")
        assertTrue(teacher.stats().published.single().framesSent > 0uL)

        assertThrows<AulaException.InvalidArgument> { publisher.pushI420(ByteArray(100), 0uL) }

        teacher.disconnect()
        assertTrue(waitUntil(10_000) { seen.updates.any { it is RoomUpdate.ParticipantLeft } })
        subscription.cancel()
        student.disconnect()
        publisher.close()
        teacher.close()
        student.close()
    }

    @Test
    fun callsAfterDisconnectFailCleanly() {
        val room = connect(url, token("kt-closed", "alice"), defaultConnectOptions())
        val publisher = room.publishAppVideo(WIDTH, HEIGHT, FPS, 0u, TrackOrigin.CAMERA, "cam")
        assertTrue(room.isConnected())
        assertTrue(room.pingMs() >= 0.0)
        room.disconnect()
        room.disconnect() // idempotent
        assertFalse(room.isConnected())
        assertThrows<AulaException.Disconnected> { room.stats() }
        assertThrows<AulaException.Disconnected> { room.publishSyntheticVideo(WIDTH, HEIGHT, FPS, 0u, "late") }
        assertThrows<AulaException.Disconnected> { room.addListener(Collector()) }
        val frame = stampedI420Frame(WIDTH, HEIGHT, Stamp(1u, 1uL))
        assertTrue(waitUntil(5_000) {
            try {
                publisher.pushI420(frame, 0uL)
                false
            } catch (e: AulaException.Disconnected) {
                true
            }
        })
        room.close()
    }

    @Test
    fun badTokensAndBadArgumentsAreTypedErrors() {
        assertThrows<AulaException.InvalidToken> { connect(url, "not-a-token", defaultConnectOptions()) }
        val forged = DevTokens.mint("kt-bad", "mallory", ParticipantRole.STUDENT, secret = "wrong-secret")
        assertThrows<AulaException.Refused> { connect(url, forged, defaultConnectOptions()) }
        assertThrows<AulaException.InvalidArgument> { stampedI420Frame(7u, 7u, Stamp(0u, 0uL)) }
        val stamp = Stamp(77u, 123_456_789uL)
        assertEquals(stamp, readStampI420(WIDTH, HEIGHT, stampedI420Frame(WIDTH, HEIGHT, stamp)))
        assertNull(readStampI420(WIDTH, HEIGHT, ByteArray((WIDTH * HEIGHT * 3u / 2u).toInt())))
    }
}
