/* A C participant pair through the Aula C ABI: a teacher publishes the stamped synthetic
 * camera and a tone, a student receives them, checks the stamps in the decoded pictures,
 * then both leave and free everything. Also checks the error paths a C caller meets.
 *
 * usage: call URL TEACHER_TOKEN STUDENT_TOKEN FORGED_TOKEN MIN_FRAMES TIMEOUT_S
 * exit code 0 on success; the reason of any failure on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aula.h"

#define CHECK(call)                                                                       \
  do {                                                                                    \
    AulaStatus status_ = (call);                                                          \
    if (status_ != AULA_STATUS_OK) {                                                      \
      const char *why_ = aula_last_error_message();                                       \
      fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #call, status_, \
              why_ ? why_ : "(no message)");                                              \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

#define EXPECT(cond, ...)                          \
  do {                                             \
    if (!(cond)) {                                 \
      fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                \
      fprintf(stderr, "\n");                       \
      exit(1);                                     \
    }                                              \
  } while (0)

typedef struct {
  atomic_int frames;
  atomic_int stamped;
  atomic_int audio_frames;
  atomic_int joined;
  atomic_int tracks;
} Counters;

static void on_video(void *user_data, const char *participant_id, const char *track_sid,
                     const AulaVideoFrame *frame) {
  Counters *c = user_data;
  (void)participant_id;
  (void)track_sid;
  atomic_fetch_add(&c->frames, 1);
  AulaStamp stamp;
  if (aula_read_stamp(frame, &stamp) == AULA_STATUS_OK) {
    atomic_fetch_add(&c->stamped, 1);
  }
}

static void on_audio(void *user_data, const char *participant_id, const char *track_sid,
                     const AulaAudioFrame *frame) {
  Counters *c = user_data;
  (void)participant_id;
  (void)track_sid;
  if (frame->sample_count > 0 && frame->sample_rate == 48000) {
    atomic_fetch_add(&c->audio_frames, 1);
  }
}

static void on_event(void *user_data, const AulaEvent *event) {
  Counters *c = user_data;
  if (event->kind == AULA_EVENT_KIND_PARTICIPANT_JOINED && event->identity != NULL) {
    atomic_fetch_add(&c->joined, 1);
  }
  if (event->kind == AULA_EVENT_KIND_TRACK_PUBLISHED && event->track_sid != NULL) {
    atomic_fetch_add(&c->tracks, 1);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s URL TEACHER_TOKEN STUDENT_TOKEN BAD_TOKEN MIN_FRAMES TIMEOUT_S\n",
            argv[0]);
    return 2;
  }
  const char *url = argv[1];
  int min_frames = atoi(argv[5]);
  double timeout = atof(argv[6]);
  CHECK(aula_set_log_level(AULA_LOG_LEVEL_WARN));
  printf("libaula %s\n", aula_version());

  /* Error paths: NULL arguments, a bad token. */
  AulaRoom *nothing = NULL;
  EXPECT(aula_room_connect(NULL, argv[2], NULL, &nothing) == AULA_STATUS_INVALID_ARGUMENT,
         "a NULL url is refused");
  EXPECT(aula_last_error_message() != NULL, "a failure leaves a message");
  EXPECT(aula_room_connect(url, "not-a-token", NULL, &nothing) == AULA_STATUS_INVALID_TOKEN,
         "a malformed token is refused: %s", aula_last_error_message());
  EXPECT(aula_room_connect(url, argv[4], NULL, &nothing) == AULA_STATUS_REFUSED,
         "a token signed with another secret is refused by the server: %s",
         aula_last_error_message());
  EXPECT(nothing == NULL, "no room on failure");
  EXPECT(aula_room_disconnect(NULL) == AULA_STATUS_INVALID_ARGUMENT, "NULL room refused");

  /* The call. */
  AulaRoom *teacher = NULL;
  AulaRoom *student = NULL;
  CHECK(aula_room_connect(url, argv[2], NULL, &teacher));
  Counters counters;
  memset(&counters, 0, sizeof counters);
  AulaConnectOptions options = {.auto_subscribe = true, .reconnect = false};
  CHECK(aula_room_connect(url, argv[3], &options, &student));
  CHECK(aula_room_set_event_callback(student, on_event, &counters));
  CHECK(aula_room_set_video_callback(student, on_video, &counters));
  CHECK(aula_room_set_audio_callback(student, on_audio, &counters));

  char *video_sid = NULL;
  CHECK(aula_room_publish_synthetic_video(teacher, 320, 180, 15, 300000, &video_sid));
  CHECK(aula_room_publish_synthetic_audio(teacher, 440.0f, NULL));
  EXPECT(video_sid != NULL && strncmp(video_sid, "TR_", 3) == 0, "track id %s", video_sid);

  double start = now_s();
  while (atomic_load(&counters.stamped) < min_frames) {
    EXPECT(now_s() - start < timeout, "only %d stamped frames of %d decoded in %.0f s",
           atomic_load(&counters.stamped), atomic_load(&counters.frames), timeout);
    sleep_ms(50);
  }
  char *stats = NULL;
  CHECK(aula_room_stats_json(student, &stats));
  EXPECT(strstr(stats, "\"frames_decoded\"") != NULL, "stats: %s", stats);
  aula_string_free(stats);
  printf("decoded %d frames (%d stamped), %d audio frames, %d track events in %.1f s\n",
         atomic_load(&counters.frames), atomic_load(&counters.stamped),
         atomic_load(&counters.audio_frames), atomic_load(&counters.tracks), now_s() - start);
  EXPECT(atomic_load(&counters.audio_frames) > 0, "audio decoded");

  CHECK(aula_room_unpublish(teacher, video_sid));
  aula_string_free(video_sid);

  /* Leave; calls afterwards fail cleanly. */
  CHECK(aula_room_disconnect(student));
  EXPECT(!aula_room_is_connected(student), "disconnected");
  EXPECT(aula_room_publish_synthetic_audio(student, 440.0f, NULL) == AULA_STATUS_DISCONNECTED,
         "a call after disconnect is refused: %s", aula_last_error_message());
  aula_room_free(student);
  aula_room_free(teacher);
  aula_room_free(NULL);
  printf("ok\n");
  return 0;
}
