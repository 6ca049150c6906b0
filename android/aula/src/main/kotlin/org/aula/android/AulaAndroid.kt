package org.aula.android

/**
 * Android entry point of the Aula SDK. Call [load] once (for example in `Application.onCreate`)
 * before any other Aula call: it loads `libaula.so` through `System.loadLibrary`, which runs the
 * library's `JNI_OnLoad` (recording the JavaVM for native code that needs it). The API itself is
 * the uniffi-generated package `org.aula` (`connect`, `AulaRoom`, ...), bound through JNA.
 */
object AulaAndroid {
    @Volatile
    private var loaded = false

    /** Loads the native library once; later calls do nothing. */
    @JvmStatic
    @Synchronized
    fun load() {
        if (!loaded) {
            System.loadLibrary("aula")
            loaded = true
        }
    }
}
