/* The shared whiteboard through the Aula C ABI: a teacher draws a stroke (in two chunks) and
 * a rectangle, the student reads them back item by item from its own replica and exports the
 * page as SVG and PNG; the student's own stroke is refused (no write grant) and reported to
 * its callback; undo, laser pointers, error paths, calls after leaving, and every free.
 * PNG is `png` when the library was built with its `png` feature (the page renders), `no-png`
 * when not (the export fails with AULA_STATUS_UNSUPPORTED, as in the mobile SDK).
 *
 * usage: board URL TEACHER_TOKEN STUDENT_TOKEN TIMEOUT_S PNG
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

#define EXPECT(cond, ...)                             \
  do {                                                \
    if (!(cond)) {                                    \
      fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                   \
      fprintf(stderr, "\n");                          \
      exit(1);                                        \
    }                                                 \
  } while (0)

typedef struct {
  atomic_int remote_changes;
  atomic_int named_items; /* item refs with an id in remote changes */
  atomic_int acks;
  atomic_int refusals;
  atomic_int permission_denied;
  atomic_int presence;
} BoardCounters;

static void on_board_event(void *user_data, const AulaWhiteboardEvent *event) {
  BoardCounters *c = user_data;
  switch (event->kind) {
    case AULA_WHITEBOARD_EVENT_KIND_CHANGED:
      if (event->remote) {
        atomic_fetch_add(&c->remote_changes, 1);
        for (size_t i = 0; i < event->item_count; i++) {
          if (event->items[i].page != NULL && event->items[i].id != NULL) {
            atomic_fetch_add(&c->named_items, 1);
          }
        }
      }
      break;
    case AULA_WHITEBOARD_EVENT_KIND_ACKED:
      atomic_fetch_add(&c->acks, 1);
      break;
    case AULA_WHITEBOARD_EVENT_KIND_REFUSED:
      atomic_fetch_add(&c->refusals, 1);
      if (event->code != NULL && strcmp(event->code, "permission_denied") == 0 &&
          event->message != NULL) {
        atomic_fetch_add(&c->permission_denied, 1);
      }
      break;
    case AULA_WHITEBOARD_EVENT_KIND_PRESENCE:
      atomic_fetch_add(&c->presence, 1);
      break;
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

/* Waits until `cond` holds, polling every 20 ms, or fails after `timeout` seconds. */
#define WAIT_FOR(cond, timeout, ...)                                      \
  do {                                                                    \
    double start_ = now_s();                                              \
    while (!(cond)) {                                                     \
      EXPECT(now_s() - start_ < (timeout), "timed out: " __VA_ARGS__);    \
      sleep_ms(20);                                                       \
    }                                                                     \
  } while (0)

static size_t page_count(AulaWhiteboard *board) {
  char **pages = NULL;
  size_t count = 0;
  CHECK(aula_whiteboard_pages(board, &pages, &count));
  EXPECT(count == 0 || strcmp(pages[0], "1") == 0, "the first page is \"1\"");
  aula_strings_free(pages, count);
  return count;
}

static size_t item_count(AulaWhiteboard *board) {
  size_t count = 0;
  CHECK(aula_whiteboard_item_count(board, &count));
  return count;
}

static size_t unacked(AulaWhiteboard *board) {
  size_t count = 0;
  CHECK(aula_whiteboard_unacked(board, &count));
  return count;
}

static bool has_item(AulaWhiteboard *board, const char *id) {
  bool present = false;
  CHECK(aula_whiteboard_has_item(board, "1", id, &present));
  return present;
}

static size_t laser_count(AulaWhiteboard *board) {
  AulaLaserPointer *lasers = NULL;
  size_t count = 0;
  CHECK(aula_whiteboard_lasers(board, &lasers, &count));
  for (size_t i = 0; i < count; i++) {
    EXPECT(strcmp(lasers[i].identity, "teacher") == 0 && strcmp(lasers[i].page, "1") == 0 &&
               lasers[i].x == 300.0 && lasers[i].y == 200.0,
           "the teacher's laser as set");
  }
  aula_laser_pointers_free(lasers, count);
  return count;
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[5], "png") != 0 && strcmp(argv[5], "no-png") != 0)) {
    fprintf(stderr, "usage: %s URL TEACHER_TOKEN STUDENT_TOKEN TIMEOUT_S png|no-png\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  double timeout = atof(argv[4]);
  bool with_png = strcmp(argv[5], "png") == 0;
  CHECK(aula_set_log_level(AULA_LOG_LEVEL_WARN));

  AulaRoom *teacher = NULL;
  AulaRoom *student = NULL;
  CHECK(aula_room_connect(url, argv[2], NULL, &teacher));
  CHECK(aula_room_connect(url, argv[3], NULL, &student));
  AulaWhiteboard *t_board = NULL;
  AulaWhiteboard *s_board = NULL;
  EXPECT(aula_room_whiteboard(NULL, &t_board) == AULA_STATUS_INVALID_ARGUMENT, "NULL room");
  CHECK(aula_room_whiteboard(teacher, &t_board));
  CHECK(aula_room_whiteboard(student, &s_board));
  BoardCounters t_seen;
  BoardCounters s_seen;
  memset(&t_seen, 0, sizeof t_seen);
  memset(&s_seen, 0, sizeof s_seen);
  CHECK(aula_whiteboard_set_event_callback(t_board, on_board_event, &t_seen));
  CHECK(aula_whiteboard_set_event_callback(s_board, on_board_event, &s_seen));

  /* A new board gets its first page from the server: draw once both replicas list it. */
  WAIT_FOR(page_count(t_board) == 1 && page_count(s_board) == 1, timeout, "the first page");

  /* Error paths. */
  EXPECT(aula_whiteboard_add_stroke(t_board, "1", "#e53935", 3.0, NULL, 4, NULL) ==
             AULA_STATUS_INVALID_ARGUMENT,
         "NULL points with a count: %s", aula_last_error_message());
  EXPECT(aula_whiteboard_add_stroke(t_board, NULL, "#e53935", 3.0, NULL, 0, NULL) ==
             AULA_STATUS_INVALID_ARGUMENT,
         "NULL page");
  EXPECT(aula_whiteboard_move_item(t_board, "1", "no-such-item", 1.0, 1.0) ==
             AULA_STATUS_INVALID_ARGUMENT,
         "an unknown item: %s", aula_last_error_message());
  EXPECT(item_count(t_board) == 0, "failed calls changed nothing");

  /* The teacher draws a stroke in two chunks and a rectangle. */
  AulaPoint first[3] = {{10.0f, 10.0f, 0.5f}, {20.0f, 15.0f, 0.6f}, {30.0f, 25.0f, 0.7f}};
  AulaPoint more[2] = {{40.0f, 30.0f, 0.8f}, {50.0f, 40.0f, 0.9f}};
  char *stroke = NULL;
  CHECK(aula_whiteboard_add_stroke(t_board, "1", "#e53935", 3.0, first, 3, &stroke));
  CHECK(aula_whiteboard_extend_stroke(t_board, "1", stroke, more, 2));
  AulaNewItem rect = {.kind = AULA_ITEM_KIND_RECT,
                      .color = "#1e88e5",
                      .width = 2.0,
                      .x = 100.0,
                      .y = 120.0,
                      .w = 60.0,
                      .h = 40.0,
                      .text = NULL,
                      .points = NULL,
                      .point_count = 0};
  char *rect_id = NULL;
  CHECK(aula_whiteboard_add_item(t_board, "1", &rect, &rect_id));
  AulaLaser laser = {.page = "1", .x = 300.0, .y = 200.0};
  CHECK(aula_whiteboard_set_laser(t_board, &laser));

  /* The student's replica has both, as drawn. */
  WAIT_FOR(item_count(s_board) == 2, timeout, "the teacher's items at the student");
  AulaItem *items = NULL;
  size_t count = 0;
  CHECK(aula_whiteboard_items(s_board, "1", &items, &count));
  EXPECT(count == 2, "%zu items", count);
  const AulaItem *s = &items[0];
  EXPECT(strcmp(s->id, stroke) == 0 && s->kind == AULA_ITEM_KIND_STROKE, "the stroke first");
  EXPECT(strcmp(s->author, "teacher") == 0 && strcmp(s->color, "#e53935") == 0 &&
             s->width == 3.0 && s->text == NULL,
         "the stroke's author, colour and width");
  EXPECT(s->point_count == 5, "both chunks of points: %zu", s->point_count);
  for (size_t i = 0; i < 5; i++) {
    AulaPoint want = i < 3 ? first[i] : more[i - 3];
    EXPECT(s->points[i].x == want.x && s->points[i].y == want.y &&
               s->points[i].pressure == want.pressure,
           "point %zu as drawn", i);
  }
  const AulaItem *r = &items[1];
  EXPECT(strcmp(r->id, rect_id) == 0 && r->kind == AULA_ITEM_KIND_RECT && r->x == 100.0 &&
             r->y == 120.0 && r->w == 60.0 && r->h == 40.0 && r->point_count == 0 &&
             r->points == NULL,
         "the rectangle as drawn");
  aula_items_free(items, count);
  WAIT_FOR(atomic_load(&s_seen.named_items) >= 2, timeout, "change events naming the items");
  WAIT_FOR(laser_count(s_board) == 1, timeout, "the teacher's laser at the student");
  WAIT_FOR(atomic_load(&s_seen.presence) >= 1, timeout, "a presence event");

  /* Both replicas are equal, and the server stored every edit. */
  WAIT_FOR(atomic_load(&t_seen.acks) >= 1, timeout, "acknowledgements");
  WAIT_FOR(unacked(t_board) == 0, timeout, "every edit acknowledged");
  char *t_digest = NULL;
  char *s_digest = NULL;
  CHECK(aula_whiteboard_digest(t_board, &t_digest));
  CHECK(aula_whiteboard_digest(s_board, &s_digest));
  EXPECT(strcmp(t_digest, s_digest) == 0, "digests %s and %s", t_digest, s_digest);
  aula_string_free(t_digest);
  aula_string_free(s_digest);

  /* Export from the student's side. */
  char *svg = NULL;
  CHECK(aula_whiteboard_export_svg(s_board, "1", 640.0, 360.0, &svg));
  EXPECT(strncmp(svg, "<svg", 4) == 0 && strstr(svg, "<path d=\"M10.00 10.00 L20.00 15.00") &&
             strstr(svg, "stroke=\"#e53935\"") &&
             strstr(svg, "<rect x=\"100\" y=\"120\" width=\"60\" height=\"40\""),
         "the SVG draws the stroke and the rectangle: %s", svg);
  aula_string_free(svg);
  uint8_t *png = NULL;
  size_t png_len = 0;
  if (with_png) {
    CHECK(aula_whiteboard_export_png(s_board, "1", 320, 180, &png, &png_len));
    EXPECT(png_len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "a PNG of %zu bytes",
           png_len);
    aula_bytes_free(png, png_len);
    EXPECT(aula_whiteboard_export_png(s_board, "1", 100000, 10, &png, &png_len) ==
               AULA_STATUS_INVALID_ARGUMENT,
           "an oversized PNG is refused");
  } else {
    EXPECT(aula_whiteboard_export_png(s_board, "1", 320, 180, &png, &png_len) ==
               AULA_STATUS_UNSUPPORTED,
           "without the png feature, PNG export is unsupported");
    EXPECT(png == NULL && png_len == 0, "nothing is returned");
    const char *why = aula_last_error_message();
    EXPECT(why != NULL && strstr(why, "png") != NULL, "the message names the feature: %s",
           why ? why : "(null)");
  }

  /* The student may not write: the server refuses, and the replica drops the stroke. */
  char *denied = NULL;
  CHECK(aula_whiteboard_add_stroke(s_board, "1", "#000000", 1.0, first, 3, &denied));
  WAIT_FOR(atomic_load(&s_seen.permission_denied) >= 1, timeout, "the refusal");
  WAIT_FOR(!has_item(s_board, denied), timeout, "the refused stroke gone from the replica");
  WAIT_FOR(item_count(s_board) == 2, timeout, "the teacher's items back after the reload");
  EXPECT(!has_item(t_board, denied), "the teacher never sees the refused stroke");
  aula_string_free(denied);

  /* Undo takes back the teacher's last edit (the rectangle), everywhere. */
  bool done = false;
  CHECK(aula_whiteboard_undo(t_board, &done));
  EXPECT(done, "the teacher had an edit to undo");
  WAIT_FOR(item_count(s_board) == 1, timeout, "the undo at the student");
  EXPECT(has_item(s_board, stroke), "the stroke stays");
  CHECK(aula_whiteboard_undo(s_board, &done));
  EXPECT(!done, "the student has nothing of its own to undo");
  aula_string_free(rect_id);

  /* After leaving, calls on the board fail cleanly; clearing the callback still works. */
  CHECK(aula_room_disconnect(student));
  EXPECT(aula_whiteboard_add_stroke(s_board, "1", "#000000", 1.0, first, 3, NULL) ==
             AULA_STATUS_DISCONNECTED,
         "a call after disconnect: %s", aula_last_error_message());
  EXPECT(aula_whiteboard_set_event_callback(s_board, on_board_event, &s_seen) ==
             AULA_STATUS_DISCONNECTED,
         "registering after disconnect");
  CHECK(aula_whiteboard_set_event_callback(s_board, NULL, NULL));
  aula_whiteboard_free(s_board);
  aula_room_free(student);
  aula_room_free(teacher);
  /* The board handle outlives its room: calls fail, free still works. */
  EXPECT(aula_whiteboard_erase(t_board, "1", stroke) == AULA_STATUS_DISCONNECTED,
         "a call after the room was freed: %s", aula_last_error_message());
  aula_whiteboard_free(t_board);
  aula_whiteboard_free(NULL);
  aula_items_free(NULL, 0);
  aula_string_free(stroke);
  printf("board: %d remote changes at the student, %d acks at the teacher\n",
         atomic_load(&s_seen.remote_changes), atomic_load(&t_seen.acks));
  printf("ok\n");
  return 0;
}
