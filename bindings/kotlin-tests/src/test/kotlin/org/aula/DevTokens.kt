package org.aula

import java.util.Base64
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/**
 * Mints access tokens as an application's backend does (docs/protocol.md, "Tokens"): a JWT
 * signed with HS256 by the API secret, the API key as `kid` and `iss`, the role's default
 * grants. `classroomJson` (a JSON object, e.g. `{"mode":"class","lobby":true}`) configures the
 * room the token opens (docs/protocol.md, "Classroom"). The SDK has no way to mint tokens: an
 * app never holds the secret.
 */
object DevTokens {
    const val KEY = "devkey"
    const val SECRET = "devsecret"

    fun mint(
        room: String,
        identity: String,
        role: ParticipantRole,
        secret: String = SECRET,
        ttlSecs: Long = 600,
        classroomJson: String? = null,
    ): String {
        val name = role.name.lowercase()
        val publish = when (role) {
            ParticipantRole.TEACHER -> """["camera","microphone","screen_share"]"""
            ParticipantRole.STUDENT -> """["camera","microphone"]"""
            ParticipantRole.OBSERVER -> "[]"
        }
        val admin = role == ParticipantRole.TEACHER
        val now = System.currentTimeMillis() / 1000
        val header = """{"alg":"HS256","typ":"JWT","kid":${json(KEY)}}"""
        val claims = """{"iss":${json(KEY)},"sub":${json(identity)},"room":${json(room)},""" +
            """"role":"$name","grants":{"publish":$publish,"subscribe":true,""" +
            """"whiteboard_write":$admin,"room_admin":$admin},"iat":$now,"exp":${now + ttlSecs}""" +
            (classroomJson?.let { ""","classroom":$it""" } ?: "") + "}"
        val signingInput = "${b64(header.toByteArray())}.${b64(claims.toByteArray())}"
        val mac = Mac.getInstance("HmacSHA256")
        mac.init(SecretKeySpec(secret.toByteArray(), "HmacSHA256"))
        return "$signingInput.${b64(mac.doFinal(signingInput.toByteArray()))}"
    }

    private fun b64(bytes: ByteArray): String = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)

    /** A JSON string literal. */
    private fun json(s: String): String = buildString {
        append('"')
        for (c in s) {
            when {
                c == '"' -> append("\\\"")
                c == '\\' -> append("\\\\")
                c < ' ' -> append("\\u%04x".format(c.code))
                else -> append(c)
            }
        }
        append('"')
    }
}
