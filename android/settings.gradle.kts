// Aula Android library (AAR). Build with ./build-android.sh (untested here: no NDK/SDK on the
// machine that wrote it).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "aula-android"
include(":aula")
