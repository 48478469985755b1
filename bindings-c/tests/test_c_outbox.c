/* The durable outbox through the C API: options, bad files, validation, OUTBOX_FULL, merging,
 * flush against the emulator (applied, 404 to the failed list), skip-unchanged, an outbox that
 * outlives its client (and its token callback's user_data, freed right after the last free),
 * threads, a full disk, a refused credential's hold and ius_outbox_clear_hold. argv[1] is the build kind; the emulator is IUS_OUTBOX_<KIND>_URL
 * (user statuses o1, o2, r1, cb1, t0..t3 under c1) and files go under IUS_OUTBOX_DIR. tests/c_api.rs
 * checks afterwards what reached the emulator. */
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#ifndef _WIN32
#include <signal.h>
#include <sys/resource.h>
#endif

#include "test_support.h"

#define THREADS 4
#define PER_THREAD 25

static char dir[512];

static void path_of(char *out, size_t size, const char *kind, const char *name) {
  snprintf(out, size, "%s/%s-%s", dir, kind, name);
}

/* The whole file, for "left as it was" (NULL if missing); *len gets its size. */
static char *slurp(const char *path, long *len) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return NULL;
  fseek(file, 0, SEEK_END);
  *len = ftell(file);
  fseek(file, 0, SEEK_SET);
  char *data = malloc((size_t)*len + 1);
  size_t got = fread(data, 1, (size_t)*len, file);
  (void)got;
  fclose(file);
  return data;
}

/* An open that must fail with `expected`, whose error JSON contains `needle`; out is NULL. */
static void open_fails(const ius_client *client, const char *path, const char *options,
                       ius_status expected, const char *needle) {
  ius_outbox *outbox = (ius_outbox *)(uintptr_t)1;
  char *error = NULL;
  ius_status status = ius_outbox_open(client, path, options, &outbox, &error);
  if (status != expected || error == NULL || strstr(error, needle) == NULL)
    fprintf(stderr, "  open %s: %s %s\n", path, ius_status_name(status), error ? error : "");
  CHECK(status == expected);
  CHECK(outbox == NULL);
  CHECK(error != NULL && strstr(error, needle) != NULL);
  ius_string_free(error);
}

static ius_status enqueue(ius_outbox *outbox, const char *id, const char *patch, char **error) {
  char target[128];
  snprintf(target, sizeof target, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"%s\"}",
           id);
  return ius_outbox_enqueue(outbox, target, patch, error);
}

static void enqueue_ok(ius_outbox *outbox, const char *id, const char *patch) {
  char *error = NULL;
  ius_status status = enqueue(outbox, id, patch, &error);
  if (status != IUS_STATUS_OK)
    fprintf(stderr, "  enqueue %s %s: %s %s\n", id, patch, ius_status_name(status),
            error ? error : "");
  CHECK(status == IUS_STATUS_OK && error == NULL);
  ius_string_free(error);
}

/* The JSON a call wrote (which must succeed); the caller frees it. */
static char *stats_of(ius_outbox *outbox) {
  char *stats = NULL, *error = NULL;
  CHECK(ius_outbox_stats(outbox, &stats, &error) == IUS_STATUS_OK && error == NULL);
  return stats;
}

static void contains(const char *json, const char *needle) {
  if (json == NULL || strstr(json, needle) == NULL)
    fprintf(stderr, "  expected %s in %s\n", needle, json ? json : "(null)");
  CHECK(json != NULL && strstr(json, needle) != NULL);
}

struct worker {
  ius_outbox *outbox;
  int index;
};

static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  char id[16], patch[64];
  snprintf(id, sizeof id, "t%d", w->index);
  for (int n = 1; n <= PER_THREAD; n++) {
    snprintf(patch, sizeof patch, "{\"devicesCount\":%d}", n);
    enqueue_ok(w->outbox, id, patch);
  }
  return NULL;
}

/* A token source whose state the agent allocates, as an agent's identity stack would. */
struct token_owner {
  int calls;
  char token[128];
};

static int32_t owned_token(void *user_data, char *buffer, size_t len, int64_t *expires_in) {
  struct token_owner *owner = (struct token_owner *)user_data;
  owner->calls++;
  size_t n = strlen(owner->token);
  if (n + 1 > len) return (int32_t)(n + 1);
  memcpy(buffer, owner->token, n + 1);
  *expires_in = 0; /* not cached: asked again before every request */
  return 0;
}

/* The token callback's user_data stays in use until the client and every outbox opened with it
 * are freed: here the client goes first and the outbox still flushes through the callback. It is
 * freed right after the last free; the library never calls the callback after it (ASan reports a
 * use after free, valgrind an invalid read, if it did), even when the file is opened again. */
static void test_callback_outlives_client_until_the_last_free(const char *kind, const char *url) {
  char config[512], path[600], *error = NULL, *report = NULL;
  snprintf(config, sizeof config, "{\"baseUrl\":\"%s\",\"retry\":{\"baseDelayMs\":10}}", url);
  path_of(path, sizeof path, kind, "callback.db");
  struct token_owner *owner = (struct token_owner *)calloc(1, sizeof *owner);
  snprintf(owner->token, sizeof owner->token, "%s", ius_env("IUS_TEST_TOKEN"));
  ius_client *client = NULL;
  ius_outbox *outbox = NULL;
  CHECK(ius_client_new_with_token_callback(config, owned_token, owner, &client, &error) ==
        IUS_STATUS_OK);
  CHECK(ius_outbox_open(client, path, NULL, &outbox, &error) == IUS_STATUS_OK && outbox != NULL);
  ius_client_free(client);
  enqueue_ok(outbox, "cb1", "{\"devicesCount\":7}");
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK);
  contains(report, "\"applied\":1");
  ius_string_free(report);
  CHECK(owner->calls >= 1);
  ius_outbox_free(outbox); /* the last of the client and its outboxes */
  free(owner);             /* so user_data may go now */

  /* The same file, opened again with another client: the freed callback is never reached. */
  char plain[512];
  snprintf(plain, sizeof plain, "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\"}", url,
           ius_env("IUS_TEST_TOKEN"));
  CHECK(ius_client_new(plain, &client, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(client, path, NULL, &outbox, &error) == IUS_STATUS_OK);
  ius_client_free(client);
  enqueue_ok(outbox, "cb1", "{\"devicesCount\":8}");
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK);
  contains(report, "\"applied\":1");
  ius_string_free(report);
  ius_outbox_free(outbox);
}

/* Credentials Graph refuses (a wrong token): the flush stops and says so ("auth"), the stats show
 * the hold it left, the next flush is held, and ius_outbox_clear_hold ends the hold. */
static void test_a_refused_credential_holds_until_cleared(const char *kind, const char *url) {
  char config[512], path[600], *error = NULL, *report = NULL;
  /* The hold is the batch's backoff: seconds, longer than the checks below take under valgrind. */
  snprintf(config, sizeof config,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"refused\",\"retry\":{\"baseDelayMs\":20000}}",
           url);
  path_of(path, sizeof path, kind, "refused.db");
  ius_client *client = NULL;
  ius_outbox *outbox = NULL;
  CHECK(ius_client_new(config, &client, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(client, path, NULL, &outbox, &error) == IUS_STATUS_OK && outbox != NULL);
  enqueue_ok(outbox, "h1", "{\"devicesCount\":1}");
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK && error == NULL);
  contains(report, "\"retryLater\":1");
  contains(report, "\"stoppedBy\":\"auth\"");
  ius_string_free(report);
  char *stats = stats_of(outbox);
  contains(stats, "\"heldUntil\":\"");
  CHECK(stats != NULL && strstr(stats, "\"holdSecondsLeft\":null") == NULL);
  ius_string_free(stats);
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK);
  contains(report, "{\"sent\":0,");
  contains(report, "\"stoppedBy\":\"held\"");
  ius_string_free(report);
  error = (char *)(uintptr_t)1; /* set to NULL on success */
  int cleared = -1;
  CHECK(ius_outbox_clear_hold(outbox, &cleared, &error) == IUS_STATUS_OK && error == NULL);
  CHECK(cleared == 1);
  stats = stats_of(outbox);
  contains(stats, "\"heldUntil\":null,\"holdSecondsLeft\":null}");
  ius_string_free(stats);
  /* Not held: clearing does nothing and succeeds; a NULL outbox is refused, the error set. */
  CHECK(ius_outbox_clear_hold(outbox, &cleared, NULL) == IUS_STATUS_OK && cleared == 0);
  CHECK(ius_outbox_clear_hold(outbox, NULL, NULL) == IUS_STATUS_OK);
  cleared = -1;
  CHECK(ius_outbox_clear_hold(NULL, &cleared, &error) == IUS_STATUS_NULL_ARGUMENT);
  CHECK(cleared == 0);
  contains(error, "\"status\":\"NULL_ARGUMENT\"");
  ius_string_free(error);
  ius_outbox_free(outbox);
  ius_client_free(client);
}

int main(int argc, char **argv) {
  const char *kind = argc > 1 ? argv[1] : "shared";
  char url_var[64], config[512], path[600], full_path[600];
  snprintf(url_var, sizeof url_var, "IUS_OUTBOX_%s_URL", strcmp(kind, "static") == 0 ? "STATIC" : "SHARED");
  snprintf(dir, sizeof dir, "%s", ius_env("IUS_OUTBOX_DIR"));
  snprintf(config, sizeof config,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"retry\":{\"baseDelayMs\":10}}",
           ius_env(url_var), ius_env("IUS_TEST_TOKEN"));
  ius_client *client = NULL;
  char *error = NULL;
  CHECK(ius_client_new(config, &client, &error) == IUS_STATUS_OK);

  CHECK(strcmp(ius_status_name(IUS_STATUS_OUTBOX_FULL), "OUTBOX_FULL") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_STORAGE), "STORAGE") == 0);

  /* Arguments and options. */
  path_of(path, sizeof path, kind, "outbox.db");
  CHECK(ius_outbox_open(client, path, NULL, NULL, NULL) == IUS_STATUS_NULL_ARGUMENT);
  open_fails(NULL, path, NULL, IUS_STATUS_NULL_ARGUMENT, "\"field\":\"client\"");
  open_fails(client, path, "{\"maxPendng\":5}", IUS_STATUS_CONFIG, "\"field\":\"maxPendng\"");
  open_fails(client, path, "{\"maxPending\":0}", IUS_STATUS_CONFIG, "\"field\":\"maxPending\"");
  open_fails(client, path, "{\"skipUnchanged\":1}", IUS_STATUS_CONFIG, "skipUnchanged");
  open_fails(client, path, "{\"flushTimeMs\":0}", IUS_STATUS_CONFIG, "\"field\":\"flushTimeMs\"");
  open_fails(client, path, "{\"maxFailed\":-1}", IUS_STATUS_CONFIG, "\"field\":\"maxFailed\"");
  open_fails(client, path, "{", IUS_STATUS_INVALID_JSON, "options_json");

  /* Bad files: STORAGE with the path; the file left as it was. */
  char missing[600];
  snprintf(missing, sizeof missing, "%s/no-such-folder/outbox.db", dir);
  open_fails(client, missing, NULL, IUS_STATUS_STORAGE, "\"path\":");
  open_fails(client, missing, NULL, IUS_STATUS_STORAGE, "does not exist");
  char notes[600];
  path_of(notes, sizeof notes, kind, "notes.txt");
  FILE *file = fopen(notes, "wb");
  for (int i = 0; i < 100; i++) fputs("not a database\n", file);
  fclose(file);
  long before_len = 0, after_len = 0;
  char *before = slurp(notes, &before_len);
  open_fails(client, notes, NULL, IUS_STATUS_STORAGE, "not an SQLite database");
  char *after = slurp(notes, &after_len);
  CHECK(before && after && before_len == after_len && memcmp(before, after, (size_t)before_len) == 0);
  free(before);
  free(after);

  /* A full outbox: new targets refused, merges still stored. */
  path_of(full_path, sizeof full_path, kind, "full.db");
  ius_outbox *full = NULL;
  CHECK(ius_outbox_open(client, full_path,
                        "{\"maxPending\":2,\"skipUnchanged\":false,\"flushTimeMs\":60000,"
                        "\"maxFailed\":100}",
                        &full, &error) == IUS_STATUS_OK && error == NULL);
  enqueue_ok(full, "o1", "{\"devicesCount\":1}");
  enqueue_ok(full, "o2", "{\"devicesCount\":1}");
  CHECK(enqueue(full, "o3", "{\"devicesCount\":1}", &error) == IUS_STATUS_OUTBOX_FULL);
  contains(error, "\"status\":\"OUTBOX_FULL\"");
  ius_string_free(error);
  enqueue_ok(full, "o1", "{\"devicesCount\":2}");
  char *stats = stats_of(full);
  contains(stats, "\"pending\":2");
  ius_string_free(stats);
  ius_outbox_free(full);

  /* The outbox used for delivery. */
  ius_outbox *outbox = NULL;
  CHECK(ius_outbox_open(client, path, NULL, &outbox, &error) == IUS_STATUS_OK && outbox != NULL);
  /* Validated as an update is; nothing stored. */
  CHECK(enqueue(outbox, "o1", "{\"devicesCount\":-1}", &error) == IUS_STATUS_INVALID_INPUT);
  contains(error, "\"field\":\"devicesCount\"");
  ius_string_free(error);
  CHECK(enqueue(outbox, "o1", "{\"devicesCount\":", &error) == IUS_STATUS_INVALID_JSON);
  ius_string_free(error);
  CHECK(ius_outbox_enqueue(outbox, "{\"deviceConfigurationId\":\"c1\"}", "{\"devicesCount\":1}",
                           &error) == IUS_STATUS_INVALID_INPUT);
  contains(error, "\"field\":\"userStatusId\"");
  ius_string_free(error);
  CHECK(ius_outbox_enqueue(NULL, "{}", "{}", &error) == IUS_STATUS_NULL_ARGUMENT);
  ius_string_free(error);
  const char *bad_items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"o1\"},"
      "\"patch\":{\"devicesCount\":1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"o2\"},"
      "\"patch\":{\"devicesCount\":-3}}]";
  CHECK(ius_outbox_enqueue_many(outbox, bad_items, &error) == IUS_STATUS_INVALID_INPUT);
  contains(error, "items[1].patch.devicesCount");
  ius_string_free(error);
  stats = stats_of(outbox);
  contains(stats, "\"pending\":0");
  contains(stats, "\"oldestPendingSeconds\":null");
  ius_string_free(stats);

  /* Merged field by field: o1 goes out once with both properties. */
  enqueue_ok(outbox, "o1", "{\"devicesCount\":1}");
  enqueue_ok(outbox, "o1", "{\"status\":\"compliant\"}");
  const char *items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"o2\",\"apiVersion\":\"v1.0\"},"
      "\"patch\":{\"devicesCount\":2}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"route\":\"identityCertificate\","
      "\"userStatusId\":\"gone\"},\"patch\":{\"devicesCount\":3}}]";
  CHECK(ius_outbox_enqueue_many(outbox, items, &error) == IUS_STATUS_OK && error == NULL);
  stats = stats_of(outbox);
  contains(stats, "\"pending\":3");
  ius_string_free(stats);

  /* The outbox outlives its client. */
  ius_client_free(client);
  char *report = NULL;
  CHECK(ius_outbox_flush(outbox, NULL, &error) == IUS_STATUS_NULL_ARGUMENT);
  ius_string_free(error);
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK && error == NULL);
  contains(report, "\"sent\":3");
  contains(report, "\"applied\":2");
  contains(report, "\"failed\":1");
  contains(report, "\"pending\":0");
  contains(report, "\"nextAttemptInSeconds\":null");
  ius_string_free(report);

  /* The 404 is in the failed list, in the shape enqueue takes, then gone from the file. */
  char *failed = NULL;
  CHECK(ius_outbox_take_failed(outbox, &failed, &error) == IUS_STATUS_OK && error == NULL);
  contains(failed, "\"userStatusId\":\"gone\"");
  contains(failed, "\"route\":\"identityCertificate\"");
  contains(failed, "\"patch\":{\"devicesCount\":3}");
  contains(failed, "\"httpStatus\":404");
  contains(failed, "\"status\":\"GRAPH\"");
  contains(failed, "\"failedAt\":\"");
  ius_string_free(failed);
  CHECK(ius_outbox_take_failed(outbox, &failed, &error) == IUS_STATUS_OK);
  CHECK(failed != NULL && strcmp(failed, "[]") == 0);
  ius_string_free(failed);

  /* Unchanged: stored nothing, counted as skipped. */
  enqueue_ok(outbox, "o1", "{\"status\":\"compliant\",\"devicesCount\":1}");
  stats = stats_of(outbox);
  contains(stats, "\"pending\":0");
  contains(stats, "\"skipped\":1");
  contains(stats, "\"applied\":2");
  contains(stats, "\"failedDropped\":0");
  ius_string_free(stats);

  /* Offline, then back after a restart: the report waits in the file. */
  int port = 0;
  ius_close_socket(ius_listen(&port)); /* nothing listens there now */
  char offline_config[256], restart_path[600];
  snprintf(offline_config, sizeof offline_config,
           "{\"baseUrl\":\"http://127.0.0.1:%d\",\"accessToken\":\"t\",\"retry\":{\"baseDelayMs\":10}}",
           port);
  path_of(restart_path, sizeof restart_path, kind, "restart.db");
  ius_client *offline = NULL;
  ius_outbox *before_restart = NULL;
  CHECK(ius_client_new(offline_config, &offline, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(offline, restart_path, NULL, &before_restart, &error) == IUS_STATUS_OK);
  ius_client_free(offline);
  enqueue_ok(before_restart, "r1", "{\"devicesCount\":4}");
  enqueue_ok(before_restart, "r1", "{\"devicesCount\":5}");
  CHECK(ius_outbox_flush(before_restart, &report, &error) == IUS_STATUS_OK);
  contains(report, "\"retryLater\":1");
  contains(report, "\"pending\":1");
  ius_string_free(report);
  ius_outbox_free(before_restart);
  ius_outbox *after_restart = NULL;
  CHECK(ius_client_new(config, &client, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(client, restart_path, NULL, &after_restart, &error) == IUS_STATUS_OK);
  ius_client_free(client);
  struct timespec backoff = {0, 300 * 1000 * 1000}; /* past the backoff of one failed flush */
  nanosleep(&backoff, NULL);
  CHECK(ius_outbox_flush(after_restart, &report, &error) == IUS_STATUS_OK);
  contains(report, "\"applied\":1");
  contains(report, "\"pending\":0");
  ius_string_free(report);
  ius_outbox_free(after_restart);

  /* Threads share one outbox; each target's last value is what goes out. */
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  for (int i = 0; i < THREADS; i++) {
    workers[i].outbox = outbox;
    workers[i].index = i;
    pthread_create(&threads[i], NULL, worker_main, &workers[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  CHECK(ius_outbox_flush(outbox, &report, &error) == IUS_STATUS_OK);
  contains(report, "\"applied\":4");
  ius_string_free(report);
  ius_outbox_free(outbox);
  ius_outbox_free(NULL);

#ifndef _WIN32
  /* A full disk: no file of this process may grow past a cap a little above the WAL's size
   * (RLIMIT_FSIZE, with SIGXFSZ ignored, so such a write fails as on a full disk). The enqueues
   * that fit are kept; the first refused is STORAGE naming the file and the full disk; once the
   * cap is lifted the same outbox stores again. (The Rust test in tests/outbox.rs also checks
   * the file's rows and a flush.) */
  char disk_path[600], wal_path[640], id[16];
  path_of(disk_path, sizeof disk_path, kind, "disk.db");
  snprintf(wal_path, sizeof wal_path, "%s-wal", disk_path);
  ius_client *disk_client = NULL;
  ius_outbox *disk = NULL;
  CHECK(ius_client_new(offline_config, &disk_client, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(disk_client, disk_path, NULL, &disk, &error) == IUS_STATUS_OK);
  ius_client_free(disk_client);
  enqueue_ok(disk, "f0", "{\"devicesCount\":1}");
  struct stat wal;
  CHECK(stat(wal_path, &wal) == 0);
  struct rlimit cap;
  CHECK(getrlimit(RLIMIT_FSIZE, &cap) == 0);
  rlim_t unlimited = cap.rlim_cur;
  cap.rlim_cur = (rlim_t)wal.st_size + 40000;
  CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
  CHECK(setrlimit(RLIMIT_FSIZE, &cap) == 0);
  int stored = 1;
  ius_status status = IUS_STATUS_OK;
  while (stored < 100) {
    snprintf(id, sizeof id, "f%d", stored);
    status = enqueue(disk, id, "{\"devicesCount\":1}", &error);
    if (status != IUS_STATUS_OK) break;
    stored++;
  }
  CHECK(status == IUS_STATUS_STORAGE);
  contains(error, "\"status\":\"STORAGE\"");
  contains(error, disk_path);
  contains(error, "the disk or the disk quota may be full");
  ius_string_free(error);
  error = NULL;
  CHECK(stored > 1 && stored < 100);
  char expected[64];
  snprintf(expected, sizeof expected, "\"pending\":%d", stored);
  stats = stats_of(disk);
  contains(stats, expected);
  ius_string_free(stats);
  cap.rlim_cur = unlimited;
  CHECK(setrlimit(RLIMIT_FSIZE, &cap) == 0);
  enqueue_ok(disk, id, "{\"devicesCount\":1}");
  snprintf(expected, sizeof expected, "\"pending\":%d", stored + 1);
  stats = stats_of(disk);
  contains(stats, expected);
  ius_string_free(stats);
  ius_outbox_free(disk);
#else
  /* A full disk, Windows' way (no file size limit there): the outbox on a small disk (a 2 MiB
   * drive the driver makes, IUS_OUTBOX_SMALL_DIR) filled up by a file of this test. The enqueues
   * that fit are kept; the first refused is STORAGE naming the file and the full disk; once the
   * filler is deleted the same outbox stores again. */
  char disk_path[600], filler_path[600], id[16];
  const char *small = ius_env("IUS_OUTBOX_SMALL_DIR");
  snprintf(disk_path, sizeof disk_path, "%s\\%s-disk.db", small, kind);
  snprintf(filler_path, sizeof filler_path, "%s\\%s-filler", small, kind);
  ius_client *disk_client = NULL;
  ius_outbox *disk = NULL;
  CHECK(ius_client_new(offline_config, &disk_client, &error) == IUS_STATUS_OK);
  CHECK(ius_outbox_open(disk_client, disk_path, NULL, &disk, &error) == IUS_STATUS_OK);
  ius_client_free(disk_client);
  enqueue_ok(disk, "f0", "{\"devicesCount\":1}");
  FILE *filler = fopen(filler_path, "wb");
  CHECK(filler != NULL);
  static char block[4096];
  long filled = 0;
  while (filler != NULL && filled < 64L * 1024 * 1024 && fwrite(block, 1, sizeof block, filler) == sizeof block &&
         fflush(filler) == 0)
    filled += (long)sizeof block;
  if (filler != NULL) fclose(filler);
  CHECK(filled > 0 && filled < 64L * 1024 * 1024); /* the disk filled up */
  int stored = 1;
  ius_status status = IUS_STATUS_OK;
  while (stored < 100) {
    snprintf(id, sizeof id, "f%d", stored);
    status = enqueue(disk, id, "{\"devicesCount\":1}", &error);
    if (status != IUS_STATUS_OK) break;
    stored++;
  }
  CHECK(status == IUS_STATUS_STORAGE);
  contains(error, "\"status\":\"STORAGE\"");
  contains(error, "-disk.db"); /* the file's name (the JSON escapes the backslashes) */
  /* A disk that is really full: SQLite says so (SQLITE_FULL), unlike a size limit's write error. */
  contains(error, "the disk is full");
  ius_string_free(error);
  error = NULL;
  CHECK(stored >= 1 && stored < 100);
  char expected[64];
  snprintf(expected, sizeof expected, "\"pending\":%d", stored);
  stats = stats_of(disk);
  contains(stats, expected);
  ius_string_free(stats);
  CHECK(remove(filler_path) == 0); /* space is back */
  enqueue_ok(disk, id, "{\"devicesCount\":1}");
  snprintf(expected, sizeof expected, "\"pending\":%d", stored + 1);
  stats = stats_of(disk);
  contains(stats, expected);
  ius_string_free(stats);
  ius_outbox_free(disk);
  /* Room for the next run (the other build kind) on the same small disk. */
  const char *suffixes[] = {"", "-wal", "-shm", "-flush"};
  for (int i = 0; i < 4; i++) {
    char file[640];
    snprintf(file, sizeof file, "%s%s", disk_path, suffixes[i]);
    remove(file);
  }
#endif

  test_callback_outlives_client_until_the_last_free(kind, ius_env(url_var));
  test_a_refused_credential_holds_until_cleared(kind, ius_env(url_var));
  return ius_summary();
}
