/* The fault matrix (docs/reliability.md) through the C API: one emulator per scenario, started
 * by tests/c_api.rs with a fault plan or write throttling, and one ius_update_user_status call per
 * scenario (the throttling scenarios: 4 threads x 8 updates on one client). This program checks
 * what C sees (status, error JSON, elapsed time); the driver then checks what each emulator saw
 * (attempts, client-request-id, Retry-Attempt, whether the update was applied).
 *
 * Usage: test_c_faults KIND (shared or static). Scenario S's emulator is in the environment
 * variable IUS_FAULT_<KIND>_<S>, e.g. IUS_FAULT_SHARED_RETRY_AFTER. Every emulator holds the user
 * statuses c1/u1 (single calls) and c1/t0 .. c1/t3 (threads). Waits are kept to 20-400 ms through
 * config_json. Each call's time is bounded on both sides: at least its stated figure, at most that
 * plus the margin in IUS_TIMING_MARGIN_MS (set by tests/c_api.rs, wider under valgrind). */
#include <time.h>

#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)
#define THREADS 4
#define UPDATES_PER_THREAD 8

static const char *token;
static double margin_seconds;
static char kind_upper[16];

/* The base URL of this build kind's emulator for `scenario`. */
static const char *url_of(const char *scenario) {
  char name[128];
  snprintf(name, sizeof name, "IUS_FAULT_%s_%s", kind_upper, scenario);
  return ius_env(name);
}

static ius_client *client_for(const char *scenario, const char *extra) {
  char cfg[1024];
  ius_client *client = NULL;
  char *error = NULL;
  snprintf(cfg, sizeof cfg, "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\"%s}", url_of(scenario),
           token, extra);
  if (ius_client_new(cfg, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new(%s): %s\n", cfg, error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The number after `"key":` in compact JSON; 0 if the key is absent. */
static int number_of(const char *json, const char *key, double *out) {
  char needle[64];
  const char *at;
  snprintf(needle, sizeof needle, "\"%s\":", key);
  at = json ? strstr(json, needle) : NULL;
  if (at == NULL) return 0;
  *out = strtod(at + strlen(needle), NULL);
  return 1;
}

/* True if `key` is absent (want < 0) or present with exactly `want`; says what it found if not. */
static int number_is(const char *json, const char *key, double want) {
  double got = 0;
  int present = number_of(json, key, &got);
  if (want < 0 ? !present : present && got == want) return 1;
  fprintf(stderr, "  %s: want %g%s in %s\n", key, want, want < 0 ? " (absent)" : "",
          json ? json : "(null)");
  return 0;
}

/* True if `key` is absent (want NULL) or present with the string `want` ("" means any non-empty
 * string). */
static int string_is(const char *json, const char *key, const char *want) {
  char needle[128];
  const char *at;
  int ok;
  snprintf(needle, sizeof needle, "\"%s\":\"%s", key, want ? want : "");
  at = json ? strstr(json, needle) : NULL;
  if (want == NULL)
    ok = at == NULL;
  else if (want[0] == '\0')
    ok = at != NULL && at[strlen(needle)] != '"';
  else
    ok = at != NULL && at[strlen(needle)] == '"';
  if (!ok)
    fprintf(stderr, "  %s: want %s in %s\n", key, want ? (want[0] ? want : "a value") : "absent",
            json ? json : "(null)");
  return ok;
}

/* One call, one fault. Numbers < 0 and NULL strings mean "absent from the error JSON". */
struct scenario {
  const char *name;   /* IUS_FAULT_<KIND>_<name> */
  const char *config; /* extra config_json keys */
  ius_status want;
  double min_seconds, max_seconds; /* the stated time of the call; the margin is added above */
  double attempts, http_status, retry_after;
  const char *code;       /* Graph's error code */
  const char *request_id; /* "" for any non-empty request-id, NULL when not checked */
};

static const struct scenario SCENARIOS[] = {
    /* 429 + Retry-After: 0.2 on the next 2 PATCHes: two waits, then the update lands. */
    {"RETRY_AFTER", ",\"retry\":{\"baseDelayMs\":50}", IUS_STATUS_OK, 0.4, 0.4, -1, -1, -1, NULL,
     NULL},
    /* 503 without Retry-After: backoff of 50 ms (+-20% jitter), then the update lands. */
    {"BACKOFF_503", ",\"retry\":{\"baseDelayMs\":50}", IUS_STATUS_OK, 0.04, 0.06, -1, -1, -1, NULL,
     NULL},
    /* 429 + Retry-After: 30 against a 5 s limit on one wait: at once, no pointless sleep. */
    {"LONG_RETRY_AFTER", ",\"retry\":{\"maxDelayMs\":5000,\"baseDelayMs\":50}",
     IUS_STATUS_THROTTLED, 0, 0, 1, 429, 30, "TooManyRequests", ""},
    /* 503 every time: 1 + 2 retries (20 ms then 40 ms, +-20%), then Graph's answer. */
    {"PERSISTENT_503", ",\"retry\":{\"maxRetries\":2,\"baseDelayMs\":20}", IUS_STATUS_GRAPH,
     0.048, 0.072, 3, 503, -1, "ServiceUnavailable", ""},
    /* 500 is not retried: at once. */
    {"STATUS_500", ",\"retry\":{\"baseDelayMs\":50}", IUS_STATUS_GRAPH, 0, 0, 1, 500, -1,
     "InternalServerError", ""},
    /* A reset before any response is retried on a fresh connection, after one backoff. */
    {"RESET", ",\"retry\":{\"baseDelayMs\":50}", IUS_STATUS_OK, 0.04, 0.06, -1, -1, -1, NULL,
     NULL},
    /* No answer at all: the whole call's budget ends it; a timeout is not retried. */
    {"NO_ANSWER", ",\"retry\":{\"baseDelayMs\":50},\"timeouts\":{\"totalMs\":400}",
     IUS_STATUS_TIMEOUT, 0.4, 0.4, 1, -1, -1, NULL, NULL},
    /* A 2 MiB 200 body is refused (the limit is 1 MiB): at once. */
    {"OVERSIZED", ",\"retry\":{\"baseDelayMs\":50}", IUS_STATUS_UNEXPECTED_RESPONSE, 0, 0, 1,
     200, -1, NULL, ""},
};

/* One update to a closed loopback port before the timed calls: what a process pays once, on its
 * first request (several seconds under valgrind), is not a fault's time. */
static void warm_up(void) {
  char cfg[256];
  ius_client *client = NULL;
  char *error = NULL;
  int port = 0;
  ius_close_socket(ius_listen(&port));
  snprintf(cfg, sizeof cfg,
           "{\"baseUrl\":\"http://127.0.0.1:%d\",\"accessToken\":\"%s\","
           "\"retry\":{\"maxRetries\":0}}",
           port, token);
  CHECK(ius_client_new(cfg, &client, NULL) == IUS_STATUS_OK);
  CHECK(ius_update_user_status(client, "c1", "u1", "{\"devicesCount\":9}", NULL, &error) ==
        IUS_STATUS_NETWORK);
  ius_string_free(error);
  ius_client_free(client);
}

static void run_scenario(const struct scenario *s) {
  ius_client *client = client_for(s->name, s->config);
  char *response = SENTINEL, *error = SENTINEL;
  double started = now_seconds(), elapsed;
  ius_status got =
      ius_update_user_status(client, "c1", "u1", "{\"devicesCount\":9}", &response, &error);
  elapsed = now_seconds() - started;
  printf("%-16s %-20s %.3f s %s\n", s->name, ius_status_name(got), elapsed,
         error && error != SENTINEL ? error : "");
  if (got != s->want)
    fprintf(stderr, "FAIL %s: want %s, got %s: %s\n", s->name, ius_status_name(s->want),
            ius_status_name(got), error && error != SENTINEL ? error : "(no error JSON)");
  CHECK(got == s->want);
  if (elapsed < s->min_seconds || elapsed > s->max_seconds + margin_seconds)
    fprintf(stderr, "FAIL %s: took %.3f s, want %.3f .. %.3f s + %.3f s\n", s->name, elapsed,
            s->min_seconds, s->max_seconds, margin_seconds);
  CHECK(elapsed >= s->min_seconds && elapsed <= s->max_seconds + margin_seconds);
  if (s->want == IUS_STATUS_OK) {
    /* 204: success without an object; no error JSON. */
    CHECK(response == NULL && error == NULL);
  } else {
    CHECK(response == NULL); /* set at entry, never left as it was */
    CHECK(error != SENTINEL && string_is(error, "status", ius_status_name(s->want)));
    CHECK(string_is(error, "message", ""));
    CHECK(string_is(error, "clientRequestId", ""));
    CHECK(number_is(error, "attempts", s->attempts));
    CHECK(number_is(error, "httpStatus", s->http_status));
    CHECK(number_is(error, "retryAfterSeconds", s->retry_after));
    CHECK(string_is(error, "code", s->code));
    if (s->request_id != NULL) CHECK(string_is(error, "requestId", s->request_id));
    CHECK(strstr(error, "\"field\"") == NULL);
    ius_string_free(error);
  }
  ius_client_free(client);
}

struct worker {
  const ius_client *client;
  int index;
  int failures;
};

static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  char status_id[16], patch[64];
  int n;
  snprintf(status_id, sizeof status_id, "t%d", w->index);
  for (n = 1; n <= UPDATES_PER_THREAD; n++) {
    char *error = NULL;
    snprintf(patch, sizeof patch, "{\"devicesCount\":%d}", n);
    if (ius_update_user_status(w->client, "c1", status_id, patch, NULL, &error) !=
        IUS_STATUS_OK) {
      fprintf(stderr, "  thread %d update %d: %s\n", w->index, n, error ? error : "(null)");
      w->failures++;
    }
    ius_string_free(error);
  }
  return NULL;
}

/* 4 threads x 8 updates through one client against Intune-like throttling (10 writes per
 * second); every update must succeed. The driver checks how many were throttled. */
static void run_threads(const char *scenario, const char *extra, double min_seconds,
                        double max_seconds) {
  ius_client *client = client_for(scenario, extra);
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  double started = now_seconds(), elapsed;
  int i, failures = 0;
  for (i = 0; i < THREADS; i++) {
    workers[i].client = client;
    workers[i].index = i;
    workers[i].failures = 0;
    CHECK(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    failures += workers[i].failures;
  }
  elapsed = now_seconds() - started;
  printf("%-16s %d failures, %.3f s\n", scenario, failures, elapsed);
  CHECK(failures == 0);
  if (elapsed < min_seconds || elapsed > max_seconds + margin_seconds)
    fprintf(stderr, "FAIL %s: took %.3f s, want %.3f .. %.3f s + %.3f s\n", scenario, elapsed,
            min_seconds, max_seconds, margin_seconds);
  CHECK(elapsed >= min_seconds && elapsed <= max_seconds + margin_seconds);
  ius_client_free(client);
}

int main(int argc, char **argv) {
  size_t i;
  if (argc != 2 || strlen(argv[1]) >= sizeof kind_upper) {
    fprintf(stderr, "usage: %s shared|static\n", argv[0]);
    return 2;
  }
  for (i = 0; argv[1][i] != '\0'; i++)
    kind_upper[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 'a' + 'A'
                                                                  : argv[1][i]);
  token = ius_env("IUS_TEST_TOKEN");
  margin_seconds = atof(ius_env("IUS_TIMING_MARGIN_MS")) / 1000.0;
  /* Every fault here comes from the emulators; the canned server is not needed. */
  (void)ius_canned_start;
  (void)ius_canned_join;
  warm_up();
  for (i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) run_scenario(&SCENARIOS[i]);
  /* Unpaced first: it meets 429s (Retry-After in whole seconds, each round holding the client for
   * 1 s) and retries them: writes 11, 21 and 31 each wait a window. */
  run_threads("THROTTLE_UNPACED", ",\"retry\":{\"maxRetries\":10,\"baseDelayMs\":50}", 3, 3);
  /* Paced at exactly the emulator's 10 per second: the client's window runs from answers, which
   * come after the emulator counted the request, so none is throttled even under valgrind; the
   * 31st request cannot leave before 3 windows have passed. */
  run_threads("THROTTLE_PACED",
              ",\"retry\":{\"baseDelayMs\":50},\"pacing\":{\"requests\":10,\"perSeconds\":1}",
              3 * 0.98, 3);
  return ius_summary();
}
