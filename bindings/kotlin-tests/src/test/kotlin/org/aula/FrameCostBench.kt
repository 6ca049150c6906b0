package org.aula

import java.net.DatagramSocket
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test

/**
 * Cost of moving one 720p I420 frame across the Kotlin boundary (run with -Daula.bench=true,
 * ideally against the shipped library: scripts/sdk-size.sh, then
 * AULA_LIB=target/release-sdk/libaula.so run.sh -Daula.bench=true -Dtest=FrameCostBench).
 * Prints medians in microseconds.
 */
class FrameCostBench {
    private fun medianUs(n: Int, block: () -> Unit): Double {
        val samples = DoubleArray(n) {
            val t = System.nanoTime()
            block()
            (System.nanoTime() - t) / 1000.0
        }
        samples.sort()
        return samples[n / 2]
    }

    @Test
    fun frameCost() {
        assumeTrue(System.getProperty("aula.bench") == "true", "benchmark disabled")
        val port = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }
        val rtcPort = DatagramSocket(0, InetAddress.getLoopbackAddress()).use { it.localPort }
        val server = ProcessBuilder(System.getProperty("aula.server"), "--dev", "--listen", "127.0.0.1:$port", "--rtc-port", "$rtcPort")
            .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        try {
            while (true) {
                try {
                    Socket().use { it.connect(InetSocketAddress("127.0.0.1", port), 200) }
                    break
                } catch (e: java.io.IOException) {
                    Thread.sleep(50)
                }
            }
            val token = DevTokens.mint("bench", "kt", ParticipantRole.TEACHER)
            val room = connect("ws://127.0.0.1:$port", token, defaultConnectOptions())
            val publisher = room.publishAppVideo(1280u, 720u, 30u, 2_000_000u, TrackOrigin.CAMERA, "bench")
            val frame = stampedI420Frame(1280u, 720u, Stamp(1u, 1uL))
            medianUs(50) { publisher.pushI420(frame, 0uL) } // warm-up (JIT)
            val push = List(5) { medianUs(200) { publisher.pushI420(frame, 0uL) } }
            val pull = List(5) { medianUs(50) { stampedI420Frame(1280u, 720u, Stamp(1u, 1uL)) } }
            println("kotlin pushI420 720p: median ${push.sorted()[2].toInt()} us (runs: ${push.map { it.toInt() }})")
            println("kotlin stampedI420Frame 720p (Rust->Kotlin): median ${pull.sorted()[2].toInt()} us (runs: ${pull.map { it.toInt() }})")
            room.disconnect()
            room.close()
        } finally {
            server.destroy()
            server.waitFor(10, TimeUnit.SECONDS)
        }
    }
}
