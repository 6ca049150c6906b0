/* A small class through the Aula C ABI: a teacher and a student in a room whose tokens carry
 * classroom settings with a lobby. The student waits in the lobby (and may not chat), is
 * admitted, raises a hand, is invited to the stage and accepts; chat goes both ways with its
 * sequence numbers; refusals carry their typed code; a latecomer is denied from the lobby and
 * the student removed, each disconnected with the teacher's words. Everything the library
 * returns is freed.
 *
 * usage: classroom URL TEACHER_TOKEN STUDENT_TOKEN LATECOMER_TOKEN TIMEOUT_S
 * exit code 0 on success; the reason of any failure on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
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

#define EXPECT(cond, ...)                             \
  do {                                                \
    if (!(cond)) {                                    \
      fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                   \
      fprintf(stderr, "\n");                          \
      exit(1);                                        \
    }                                                 \
  } while (0)

/* The call is refused by the server with `code`. */
#define EXPECT_REFUSED(call, code)                                                           \
  do {                                                                                       \
    AulaStatus status_ = (call);                                                             \
    EXPECT(status_ == AULA_STATUS_REFUSED, "%s: status %d (%s), expected a refusal", #call, \
           status_, aula_last_error_message() ? aula_last_error_message() : "");             \
    EXPECT(aula_last_error_code() == (code), "%s: code %d, expected %d (%s)", #call,        \
           aula_last_error_code(), (code), aula_last_error_message());                      \
  } while (0)

/* What one side's event callback saw, copied out of the events (their pointers are valid
 * only during the callback). */
typedef struct {
  pthread_mutex_t lock;
  char lobby_participant[64];  /* teacher: a participant that joined into the lobby */
  char invited_by[64];         /* student: who invited it to the stage */
  char hand[64];               /* teacher: the first raised hand */
  int hand_events;             /* teacher: classroom updates with a raised hand */
  int hands_lowered;           /* teacher: classroom updates with no hand after one */
  int admitted;
  int camera_allowed;          /* student: permissions now allow a camera */
  int invitation_answered;     /* teacher: 1 accepted, -1 declined */
  uint64_t chat_seq;           /* the last chat message received */
  char chat_text[128];
  char chat_from[64];
  AulaChatPolicy chat_policy;  /* student: the chat policy of the last classroom update */
  int classroom_updates;
  int disconnected;
  AulaLeaveReason cause;
  char message[128];
} Seen;

static void copy(char *to, size_t size, const char *from) {
  snprintf(to, size, "%s", from ? from : "");
}

static void on_event(void *user_data, const AulaEvent *event) {
  Seen *seen = user_data;
  pthread_mutex_lock(&seen->lock);
  switch (event->kind) {
    case AULA_EVENT_KIND_PARTICIPANT_JOINED:
      if (event->placement == AULA_PLACEMENT_LOBBY) {
        copy(seen->lobby_participant, sizeof seen->lobby_participant, event->participant_id);
      }
      break;
    case AULA_EVENT_KIND_ADMITTED:
      seen->admitted++;
      break;
    case AULA_EVENT_KIND_PERMISSIONS_CHANGED:
      seen->camera_allowed = event->permissions->publish.camera;
      break;
    case AULA_EVENT_KIND_CLASSROOM_CHANGED:
      seen->classroom_updates++;
      seen->chat_policy = event->classroom->settings.chat;
      if (event->classroom->hand_count > 0) {
        copy(seen->hand, sizeof seen->hand, event->classroom->hands[0]);
        seen->hand_events++;
      } else if (seen->hand_events > 0) {
        seen->hands_lowered++;
      }
      break;
    case AULA_EVENT_KIND_STAGE_INVITATION:
      copy(seen->invited_by, sizeof seen->invited_by, event->participant_id);
      break;
    case AULA_EVENT_KIND_STAGE_INVITATION_ANSWERED:
      seen->invitation_answered = event->accepted ? 1 : -1;
      break;
    case AULA_EVENT_KIND_CHAT_RECEIVED:
      seen->chat_seq = event->chat->seq;
      copy(seen->chat_text, sizeof seen->chat_text, event->chat->text);
      copy(seen->chat_from, sizeof seen->chat_from, event->chat->from_identity);
      break;
    case AULA_EVENT_KIND_DISCONNECTED:
      seen->disconnected++;
      seen->cause = event->cause;
      copy(seen->message, sizeof seen->message, event->message);
      break;
    default:
      break;
  }
  pthread_mutex_unlock(&seen->lock);
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

static double timeout_s;

/* Waits until `cond` (read under `seen`'s lock) holds. */
#define WAIT_FOR(seen, cond, what)                                                  \
  do {                                                                              \
    double start_ = now_s();                                                        \
    for (;;) {                                                                      \
      pthread_mutex_lock(&(seen)->lock);                                            \
      int done_ = (cond);                                                           \
      pthread_mutex_unlock(&(seen)->lock);                                          \
      if (done_) break;                                                             \
      EXPECT(now_s() - start_ < timeout_s, "timed out waiting for %s", what);       \
      sleep_ms(20);                                                                 \
    }                                                                               \
  } while (0)

static Seen *new_seen(void) {
  Seen *seen = calloc(1, sizeof *seen);
  EXPECT(seen != NULL, "out of memory");
  pthread_mutex_init(&seen->lock, NULL);
  return seen;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s URL TEACHER_TOKEN STUDENT_TOKEN LATECOMER_TOKEN TIMEOUT_S\n",
            argv[0]);
    return 2;
  }
  const char *url = argv[1];
  timeout_s = atof(argv[5]);
  CHECK(aula_set_log_level(AULA_LOG_LEVEL_WARN));
  Seen *t_seen = new_seen();
  Seen *s_seen = new_seen();

  AulaRoom *teacher = NULL;
  AulaRoom *student = NULL;
  /* No media here (call.c covers it): without subscriptions and publications neither side
   * opens a media connection, so a slow run (valgrind) cannot lose one. */
  AulaConnectOptions options = {.auto_subscribe = false, .reconnect = false};
  CHECK(aula_room_connect(url, argv[2], &options, &teacher));
  CHECK(aula_room_set_event_callback(teacher, on_event, t_seen));
  CHECK(aula_room_connect(url, argv[3], &options, &student));
  CHECK(aula_room_set_event_callback(student, on_event, s_seen));
  char *teacher_id = NULL;
  char *student_id = NULL;
  CHECK(aula_room_local_participant_id(teacher, &teacher_id));
  CHECK(aula_room_local_participant_id(student, &student_id));

  /* The student waits in the lobby, where it may do nothing. */
  AulaPlacement placement = AULA_PLACEMENT_STAGE;
  CHECK(aula_room_placement(student, &placement));
  EXPECT(placement == AULA_PLACEMENT_LOBBY, "the student starts in the lobby (%d)", placement);
  AulaClassroomView *view = NULL;
  CHECK(aula_room_classroom(student, &view));
  EXPECT(view->placement == AULA_PLACEMENT_LOBBY, "the view says lobby");
  EXPECT(view->has_permissions && !view->permissions.chat && !view->permissions.publish.camera,
         "the lobby may neither chat nor publish");
  EXPECT(view->classroom.settings.mode == AULA_ROOM_MODE_CLASS && view->classroom.settings.lobby,
         "the token's classroom settings configured the room");
  EXPECT(view->classroom.teacher_present, "the lobby knows a teacher is there");
  EXPECT(view->chat_count == 0 && view->chat == NULL, "the lobby sees no chat");
  aula_classroom_view_free(view);
  EXPECT_REFUSED(aula_room_send_chat(student, "let me in", NULL, false, NULL),
                 AULA_ERROR_CODE_CHAT_DISABLED);
  EXPECT_REFUSED(aula_room_raise_hand(student), AULA_ERROR_CODE_INVALID_STATE);

  /* The teacher sees it waiting and admits it. */
  WAIT_FOR(t_seen, t_seen->lobby_participant[0] != '\0', "the student in the teacher's lobby");
  EXPECT(strcmp(t_seen->lobby_participant, student_id) == 0, "the lobby holds %s, not %s",
         t_seen->lobby_participant, student_id);
  CHECK(aula_room_admit(teacher, student_id));
  WAIT_FOR(s_seen, s_seen->admitted == 1, "the student's admission");
  CHECK(aula_room_placement(student, &placement));
  EXPECT(placement == AULA_PLACEMENT_AUDIENCE, "admitted into the audience (%d)", placement);
  EXPECT_REFUSED(aula_room_admit(teacher, student_id), AULA_ERROR_CODE_INVALID_STATE);

  /* A latecomer waits in the lobby and is denied: its room closes with the teacher's words. */
  Seen *l_seen = new_seen();
  AulaRoom *latecomer = NULL;
  CHECK(aula_room_connect(url, argv[4], &options, &latecomer));
  CHECK(aula_room_set_event_callback(latecomer, on_event, l_seen));
  char *latecomer_id = NULL;
  CHECK(aula_room_local_participant_id(latecomer, &latecomer_id));
  WAIT_FOR(t_seen, strcmp(t_seen->lobby_participant, latecomer_id) == 0,
           "the latecomer in the teacher's lobby");
  CHECK(aula_room_deny(teacher, latecomer_id, "The class is full today"));
  WAIT_FOR(l_seen, l_seen->disconnected > 0, "the latecomer's denial");
  EXPECT(l_seen->cause == AULA_LEAVE_REASON_DENIED, "cause %d", l_seen->cause);
  EXPECT(strcmp(l_seen->message, "The class is full today") == 0, "message '%s'",
         l_seen->message);
  EXPECT(l_seen->admitted == 0, "the latecomer was never admitted");
  EXPECT(!aula_room_is_connected(latecomer), "the latecomer's room is closed");
  EXPECT_REFUSED(aula_room_deny(teacher, latecomer_id, NULL),
                 AULA_ERROR_CODE_UNKNOWN_PARTICIPANT);
  aula_string_free(latecomer_id);
  aula_room_free(latecomer);
  pthread_mutex_destroy(&l_seen->lock);
  free(l_seen);

  /* A student may not run the class: typed refusals, and a success clears the code. */
  EXPECT_REFUSED(aula_room_admit(student, teacher_id), AULA_ERROR_CODE_PERMISSION_DENIED);
  EXPECT_REFUSED(aula_room_lock_room(student, true), AULA_ERROR_CODE_PERMISSION_DENIED);
  EXPECT_REFUSED(aula_room_invite_to_stage(teacher, "PA_nobody"),
                 AULA_ERROR_CODE_UNKNOWN_PARTICIPANT);
  CHECK(aula_room_placement(student, &placement));
  EXPECT(aula_last_error_code() == AULA_ERROR_CODE_NONE, "a success clears the code");
  EXPECT(aula_room_admit(teacher, NULL) == AULA_STATUS_INVALID_ARGUMENT, "NULL id refused");
  EXPECT(aula_last_error_code() == AULA_ERROR_CODE_NONE, "not a server refusal");
  EXPECT(aula_room_update_room_settings(teacher, NULL) == AULA_STATUS_INVALID_ARGUMENT,
         "a NULL patch is refused");

  /* A raised hand reaches the teacher, who dismisses it, then invites; the student accepts. */
  CHECK(aula_room_raise_hand(student));
  WAIT_FOR(t_seen, t_seen->hand_events > 0, "the raised hand");
  EXPECT(strcmp(t_seen->hand, student_id) == 0, "the hand is the student's");
  CHECK(aula_room_dismiss_hand(teacher, student_id));
  WAIT_FOR(t_seen, t_seen->hands_lowered > 0, "the hand lowered");
  CHECK(aula_room_invite_to_stage(teacher, student_id));
  WAIT_FOR(s_seen, s_seen->invited_by[0] != '\0', "the stage invitation");
  EXPECT(strcmp(s_seen->invited_by, teacher_id) == 0, "invited by the teacher");
  CHECK(aula_room_classroom(student, &view));
  EXPECT(view->invitation_from != NULL && strcmp(view->invitation_from, teacher_id) == 0,
         "the view holds the pending invitation");
  aula_classroom_view_free(view);
  CHECK(aula_room_answer_stage_invitation(student, true));
  WAIT_FOR(t_seen, t_seen->invitation_answered != 0, "the answer");
  EXPECT(t_seen->invitation_answered == 1, "the invitation was accepted");
  WAIT_FOR(s_seen, s_seen->camera_allowed, "permission to publish a camera");
  /* Its placement comes with its own event (participant_updated), maybe just after. */
  double start = now_s();
  for (;;) {
    CHECK(aula_room_placement(student, &placement));
    if (placement == AULA_PLACEMENT_STAGE) break;
    EXPECT(now_s() - start < timeout_s, "not on stage (%d)", placement);
    sleep_ms(20);
  }

  /* Chat both ways, with sequence numbers. */
  AulaChatMessage *sent = NULL;
  CHECK(aula_room_send_chat(teacher, "Welcome to class", NULL, true, &sent));
  EXPECT(sent->seq >= 1 && sent->kind == AULA_CHAT_KIND_ANNOUNCEMENT, "stored announcement");
  EXPECT(strcmp(sent->text, "Welcome to class") == 0 && sent->to_identity == NULL,
         "public text %s", sent->text);
  WAIT_FOR(s_seen, s_seen->chat_seq == sent->seq, "the announcement at the student");
  EXPECT(strcmp(s_seen->chat_text, "Welcome to class") == 0, "text %s", s_seen->chat_text);
  EXPECT(strcmp(s_seen->chat_from, "teacher") == 0, "from %s", s_seen->chat_from);
  uint64_t first_seq = sent->seq;
  aula_chat_message_free(sent);
  sent = NULL;
  CHECK(aula_room_send_chat(student, "Thank you", teacher_id, false, &sent));
  EXPECT(sent->seq > first_seq, "sequence numbers increase (%llu after %llu)",
         (unsigned long long)sent->seq, (unsigned long long)first_seq);
  EXPECT(sent->to_identity != NULL && strcmp(sent->to_identity, "teacher") == 0,
         "private to the teacher");
  WAIT_FOR(t_seen, t_seen->chat_seq == sent->seq, "the student's message at the teacher");
  EXPECT(strcmp(t_seen->chat_from, "student") == 0, "from %s", t_seen->chat_from);
  uint64_t second_seq = sent->seq;
  aula_chat_message_free(sent);
  EXPECT_REFUSED(aula_room_send_chat(student, "Hi", NULL, true, NULL),
                 AULA_ERROR_CODE_PERMISSION_DENIED);  /* announcements are the teacher's */
  AulaChatMessage *history = NULL;
  size_t count = 0;
  bool more = true;
  CHECK(aula_room_chat_history(student, 0, 0, &history, &count, &more));
  EXPECT(count == 2 && !more, "%zu messages in the history", count);
  EXPECT(history[0].seq == first_seq && history[1].seq == second_seq, "in order");
  aula_chat_messages_free(history, count);
  CHECK(aula_room_chat_history(student, second_seq, 1, &history, &count, NULL));
  EXPECT(count == 1 && history[0].seq == first_seq, "paging back from a seq");
  aula_chat_messages_free(history, count);
  CHECK(aula_room_classroom(student, &view));
  EXPECT(view->chat_count == 2 && view->chat[1].seq == second_seq, "the view keeps the chat");
  EXPECT(view->permissions.chat && view->permissions.publish.camera, "on stage: chat, camera");
  aula_classroom_view_free(view);

  /* The teacher makes chat teachers-only: the student hears of it and is refused. */
  AulaChatPolicy teachers_only = AULA_CHAT_POLICY_TEACHERS;
  AulaRoomSettingsPatch patch = {.chat = &teachers_only};
  CHECK(aula_room_update_room_settings(teacher, &patch));
  WAIT_FOR(s_seen, s_seen->chat_policy == AULA_CHAT_POLICY_TEACHERS, "the new chat policy");
  EXPECT_REFUSED(aula_room_send_chat(student, "still there?", NULL, false, NULL),
                 AULA_ERROR_CODE_CHAT_DISABLED);

  /* Removal: the student is disconnected with the teacher's words. */
  CHECK(aula_room_remove_participant(teacher, student_id, "Please rejoin from your desk"));
  WAIT_FOR(s_seen, s_seen->disconnected > 0, "the student's removal");
  EXPECT(s_seen->cause == AULA_LEAVE_REASON_REMOVED, "cause %d", s_seen->cause);
  EXPECT(strcmp(s_seen->message, "Please rejoin from your desk") == 0, "message '%s'",
         s_seen->message);
  EXPECT(!aula_room_is_connected(student), "the student's room is closed");
  EXPECT(aula_room_raise_hand(student) == AULA_STATUS_DISCONNECTED, "calls after removal fail");

  aula_string_free(teacher_id);
  aula_string_free(student_id);
  aula_room_free(student);
  aula_room_free(teacher);
  aula_classroom_view_free(NULL);
  aula_chat_messages_free(NULL, 0);
  aula_chat_message_free(NULL);
  pthread_mutex_destroy(&t_seen->lock);
  pthread_mutex_destroy(&s_seen->lock);
  free(t_seen);
  free(s_seen);
  printf("ok\n");
  return 0;
}
