/* ius_client_interrupt through the C API: a call blocked on each kind of wait (a stalled response,
 * a Retry-After wait, the pacing gate, another thread's token callback, a bulk item's retry)
 * returns IUS_STATUS_CANCELLED within half a second (this program's own clock; 5 s under
 * valgrind, which runs one thread at a time), the abandoned connection is closed (the emulator's
 * stats), and a call started afterwards succeeds. Also: a thread waiting for another thread's
 * token callback whose budget runs out gets TIMEOUT, and a retried bulk item that succeeds
 * carries its attempts.
 *
 * Usage: test_c_interrupt KIND (shared or static). The emulator is IUS_INTERRUPT_<KIND>_URL: it
 * holds c1/stall (its first PATCH is never answered), c1/wait (its first PATCH answers 503 with
 * Retry-After 30), c1/paced, c1/cb, c1/budget, c1/b0 .. c1/b2, c1/bretry (its first PATCH answers
 * 503 with Retry-After 0.01) and c1/bwait (503 with Retry-After 30); for the outbox (files under
 * IUS_OUTBOX_DIR), c1/ob0, c1/ob1, c1/ostall (its first PATCH never answered), c1/oa, c1/owait
 * (503 with Retry-After 30), c1/olock0 (never answered) and c1/olock1.
 *
 * The outbox: ius_outbox_interrupt ends a flush stalled on a response and one waiting for another
 * flush's lock, ius_client_interrupt one in a Retry-After wait; each returns CANCELLED within the
 * bound with its report (what was done, what is pending), and the next flush after the abandoned
 * reports' backoff (the clients': 10 ms, jittered) delivers the rest. */
#include "intune_user_status.h"
#include "test_support.h"

static const char *base_url;
static const char *token;
/* How soon an interrupted call must return, and how long a thread is given to reach its wait. */
static long bound_ms = 500;
static long settle_ms = 300;
/* Longer than the outbox clients' first backoff (baseDelayMs 10: at most 12 ms). */
static const long backoff_ms = 20;

/* Connections open on the emulator, besides the one asking. Earlier queries' connections are
 * given a moment to be counted closed first. */
static long open_connections(void) {
  const char *keys[2] = {"connectionsAccepted", "connectionsClosed"};
  long values[2];
  ius_test_sleep_ms(50);
  ius_test_stats(base_url, keys, values, 2);
  return values[0] - values[1] - 1;
}

/* Waits (at most 20 s) until `key` reaches `at_least`. */
static int wait_for_stat(const char *key, long at_least) {
  long give_up = ius_test_now_ms() + 20000;
  while (ius_test_stat(base_url, key) < at_least) {
    if (ius_test_now_ms() > give_up) {
      fprintf(stderr, "  %s never reached %ld\n", key, at_least);
      return 0;
    }
    ius_test_sleep_ms(5);
  }
  return 1;
}

static ius_client *new_client(const char *extra) {
  char cfg[512];
  ius_client *client = NULL;
  char *error = NULL;
  snprintf(cfg, sizeof cfg,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"timeouts\":{\"requestMs\":20000}%s}",
           base_url, token, extra);
  if (ius_client_new(cfg, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new(%s): %s\n", cfg, error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

/* One update on its own thread. */
struct call {
  const ius_client *client;
  const char *status_id;
  int count;
  ius_status status;
  char *error;
  int done;
  pthread_t thread;
};

static void *call_main(void *arg) {
  struct call *call = (struct call *)arg;
  call->status = ius_test_update(call->client, call->status_id, call->count, &call->error);
  __atomic_store_n(&call->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void call_start(struct call *call, const ius_client *client, const char *status_id,
                       int count) {
  memset(call, 0, sizeof *call);
  call->client = client;
  call->status_id = status_id;
  call->count = count;
  pthread_create(&call->thread, NULL, call_main, call);
}

/* Joins `thread` once `*done` is set; how long after `since` it had been (-1 if not within 20 s,
 * then it is left running and the program fails). */
static long join_within(const int *done, pthread_t thread, long since) {
  long give_up = ius_test_now_ms() + 20000;
  while (!__atomic_load_n(done, __ATOMIC_SEQ_CST)) {
    if (ius_test_now_ms() > give_up) return -1;
    ius_test_sleep_ms(1);
  }
  long took = ius_test_now_ms() - since;
  pthread_join(thread, NULL);
  return took;
}

/* Joins the call: see join_within. */
static long call_join(struct call *call, long since) {
  return join_within(&call->done, call->thread, since);
}

/* Interrupts `client` and checks that `call` returns CANCELLED promptly, its error JSON saying
 * so and naming `stage`. */
static void interrupt_and_expect_cancelled(ius_client *client, struct call *call,
                                           const char *stage) {
  long interrupted = ius_test_now_ms();
  ius_client_interrupt(client);
  long took = call_join(call, interrupted);
  if (took < 0 || took > bound_ms || call->status != IUS_STATUS_CANCELLED)
    fprintf(stderr, "  %s: %s after %ld ms: %s\n", call->status_id, ius_status_name(call->status),
            took, call->error ? call->error : "");
  CHECK(took >= 0 && took <= bound_ms);
  CHECK(call->status == IUS_STATUS_CANCELLED);
  CHECK(call->error != NULL && strstr(call->error, "\"status\":\"CANCELLED\"") != NULL);
  CHECK(call->error != NULL && strstr(call->error, stage) != NULL);
  ius_string_free(call->error);
  call->error = NULL;
}

static void stalled_response(void) {
  ius_client *client = new_client("");
  struct call call;
  long requests = ius_test_stat(base_url, "requests");
  call_start(&call, client, "stall", 1);
  CHECK(wait_for_stat("requests", requests + 1));
  ius_test_sleep_ms(100);
  long open_before = open_connections();
  interrupt_and_expect_cancelled(client, &call, "response");
  /* The abandoned connection is closed. */
  long give_up = ius_test_now_ms() + 5000;
  while (open_connections() >= open_before && ius_test_now_ms() < give_up) ius_test_sleep_ms(5);
  CHECK(open_connections() == open_before - 1);
  /* A call started afterwards succeeds, and nothing was resent meanwhile. */
  CHECK(ius_test_stat(base_url, "requests") == requests + 1);
  ius_test_update_ok(client, "stall", 2);
  ius_client_free(client);
}

static void retry_after_wait(void) {
  ius_client *client = new_client("");
  struct call call;
  long requests = ius_test_stat(base_url, "requests");
  call_start(&call, client, "wait", 1);
  CHECK(wait_for_stat("requests", requests + 1));
  ius_test_sleep_ms(settle_ms);
  interrupt_and_expect_cancelled(client, &call, "Retry-After");
  ius_test_sleep_ms(100);
  CHECK(ius_test_stat(base_url, "requests") == requests + 1);
  ius_test_update_ok(client, "wait", 2);
  ius_client_free(client);
}

static void pacing_gate(void) {
  /* A window well past the time the thread is given to reach the gate. */
  char extra[128];
  snprintf(extra, sizeof extra, ",\"pacing\":{\"requests\":1,\"perSeconds\":%ld}",
           settle_ms * 4 / 1000 + 1);
  ius_client *client = new_client(extra);
  struct call call;
  ius_test_update_ok(client, "paced", 1);
  long requests = ius_test_stat(base_url, "requests");
  call_start(&call, client, "paced", 2);
  ius_test_sleep_ms(settle_ms);
  interrupt_and_expect_cancelled(client, &call, "pacing");
  CHECK(ius_test_stat(base_url, "requests") == requests);
  /* The next call keeps the pace and goes. */
  ius_test_update_ok(client, "paced", 3);
  ius_client_free(client);
}

/* A token callback that blocks until the test releases it. */
struct gate {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int entered;
  int released;
  int calls;
};

static int32_t blocking_callback(void *user_data, char *buffer, size_t len, int64_t *expires_in) {
  struct gate *gate = (struct gate *)user_data;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&gate->lock);
  gate->calls++;
  gate->entered = 1;
  pthread_cond_broadcast(&gate->changed);
  while (!gate->released) {
    if (pthread_cond_timedwait(&gate->changed, &gate->lock, &until) != 0) break;
  }
  pthread_mutex_unlock(&gate->lock);
  snprintf(buffer, len, "%s", token);
  *expires_in = 3600;
  return 0;
}

static void gate_init(struct gate *gate) {
  memset(gate, 0, sizeof *gate);
  pthread_mutex_init(&gate->lock, NULL);
  pthread_cond_init(&gate->changed, NULL);
}

static void gate_wait_entered(struct gate *gate) {
  pthread_mutex_lock(&gate->lock);
  while (!gate->entered) pthread_cond_wait(&gate->changed, &gate->lock);
  pthread_mutex_unlock(&gate->lock);
}

static void gate_release(struct gate *gate) {
  pthread_mutex_lock(&gate->lock);
  gate->released = 1;
  pthread_cond_broadcast(&gate->changed);
  pthread_mutex_unlock(&gate->lock);
}

static void gate_destroy(struct gate *gate) {
  pthread_cond_destroy(&gate->changed);
  pthread_mutex_destroy(&gate->lock);
}

static ius_client *callback_client(struct gate *gate, const char *extra) {
  char cfg[512];
  ius_client *client = NULL;
  char *error = NULL;
  snprintf(cfg, sizeof cfg, "{\"baseUrl\":\"%s\"%s}", base_url, extra);
  if (ius_client_new_with_token_callback(cfg, blocking_callback, gate, &client, &error) !=
      IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new_with_token_callback(%s): %s\n", cfg,
            error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

static void token_callback_waiter(void) {
  struct gate gate;
  struct call fetching, waiting;
  gate_init(&gate);
  ius_client *client = callback_client(&gate, "");
  long requests = ius_test_stat(base_url, "requests");
  call_start(&fetching, client, "cb", 1);
  gate_wait_entered(&gate);
  call_start(&waiting, client, "cb", 2);
  ius_test_sleep_ms(settle_ms);
  /* The waiter returns at once; the thread inside the callback when the callback returns. */
  interrupt_and_expect_cancelled(client, &waiting, "token");
  gate_release(&gate);
  CHECK(call_join(&fetching, ius_test_now_ms()) >= 0);
  CHECK(fetching.status == IUS_STATUS_CANCELLED);
  ius_string_free(fetching.error);
  CHECK(ius_test_stat(base_url, "requests") == requests);
  /* The token the callback gave is cached: the next call uses it. */
  ius_test_update_ok(client, "cb", 3);
  CHECK(gate.calls == 1);
  ius_client_free(client);
  gate_destroy(&gate);
}

static void token_callback_waiter_out_of_budget(void) {
  struct gate gate;
  struct call fetching, waiting;
  gate_init(&gate);
  ius_client *client = callback_client(&gate, ",\"timeouts\":{\"totalMs\":1000}");
  call_start(&fetching, client, "budget", 1);
  gate_wait_entered(&gate);
  call_start(&waiting, client, "budget", 2);
  /* The waiter's budget runs out while the callback still runs: a spent budget, TIMEOUT. */
  CHECK(call_join(&waiting, ius_test_now_ms()) >= 0);
  if (waiting.status != IUS_STATUS_TIMEOUT)
    fprintf(stderr, "  waiter: %s %s\n", ius_status_name(waiting.status),
            waiting.error ? waiting.error : "");
  CHECK(waiting.status == IUS_STATUS_TIMEOUT);
  CHECK(waiting.error != NULL && strstr(waiting.error, "token refresh") != NULL);
  ius_string_free(waiting.error);
  gate_release(&gate);
  CHECK(call_join(&fetching, ius_test_now_ms()) >= 0);
  ius_string_free(fetching.error);
  ius_client_free(client);
  gate_destroy(&gate);
}

/* How many times `needle` occurs in `text`. */
static int occurrences(const char *text, const char *needle) {
  int n = 0;
  for (const char *at = strstr(text, needle); at != NULL; at = strstr(at + 1, needle)) n++;
  return n;
}

struct bulk_call {
  const ius_client *client;
  ius_status status;
  char *results;
  char *error;
  int done;
  pthread_t thread;
};

static void *bulk_main(void *arg) {
  struct bulk_call *call = (struct bulk_call *)arg;
  const char *items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b0\"},"
      "\"patch\":{\"devicesCount\":1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b1\"},"
      "\"patch\":{\"devicesCount\":1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b2\"},"
      "\"patch\":{\"devicesCount\":1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"bretry\"},"
      "\"patch\":{\"devicesCount\":1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"bwait\"},"
      "\"patch\":{\"devicesCount\":1}}]";
  call->status = ius_update_user_statuses(call->client, items, &call->results, &call->error);
  __atomic_store_n(&call->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void bulk_call_interrupted(void) {
  ius_client *client = new_client(",\"retry\":{\"baseDelayMs\":10}");
  struct bulk_call call;
  memset(&call, 0, sizeof call);
  call.client = client;
  long requests = ius_test_stat(base_url, "requests");
  pthread_create(&call.thread, NULL, bulk_main, &call);
  /* The first envelope and its 5 items, then bretry's retry alone: 8 recorded requests. */
  CHECK(wait_for_stat("requests", requests + 8));
  ius_test_sleep_ms(settle_ms);
  long interrupted = ius_test_now_ms();
  ius_client_interrupt(client);
  long give_up = interrupted + 20000;
  while (!__atomic_load_n(&call.done, __ATOMIC_SEQ_CST) && ius_test_now_ms() < give_up) ius_test_sleep_ms(1);
  long took = ius_test_now_ms() - interrupted;
  CHECK(took <= bound_ms);
  pthread_join(call.thread, NULL);
  CHECK(call.status == IUS_STATUS_PARTIAL);
  CHECK(call.results != NULL);
  if (call.results != NULL) {
    const char *r = call.results;
    /* Finished items keep their results, with the requests that carried them (bretry: 2). */
    int once = occurrences(r, "{\"status\":\"OK\",\"httpStatus\":204,\"response\":null,\"attempts\":1}");
    int twice = occurrences(r, "{\"status\":\"OK\",\"httpStatus\":204,\"response\":null,\"attempts\":2}");
    int cancelled = occurrences(r, "{\"status\":\"CANCELLED\",\"error\":{");
    if (once != 3 || twice != 1 || cancelled != 1) fprintf(stderr, "  results: %s\n", r);
    CHECK(once == 3 && twice == 1 && cancelled == 1);
    /* The cancelled item is the last. */
    CHECK(strstr(r, "\"status\":\"CANCELLED\"") > strstr(r, "\"attempts\":2"));
  }
  CHECK(call.error != NULL && strstr(call.error, "PARTIAL") != NULL);
  ius_string_free(call.results);
  ius_string_free(call.error);
  ius_test_update_ok(client, "bwait", 2);
  ius_client_free(client);
}

/* ---- The outbox: ius_outbox_interrupt, and ius_client_interrupt on its client. ---- */

static char outbox_dir[512];
static const char *outbox_kind;

static ius_outbox *open_outbox(ius_client *client, const char *name) {
  char path[700];
  ius_outbox *outbox = NULL;
  char *error = NULL;
  snprintf(path, sizeof path, "%s/interrupt-%s-%s", outbox_dir, outbox_kind, name);
  if (ius_outbox_open(client, path, NULL, &outbox, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_outbox_open(%s): %s\n", path, error ? error : "(no error JSON)");
    exit(2);
  }
  return outbox;
}

static void outbox_enqueue(ius_outbox *outbox, const char *status_id, int count) {
  char target[128], patch[64];
  char *error = NULL;
  snprintf(target, sizeof target, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"%s\"}",
           status_id);
  snprintf(patch, sizeof patch, "{\"devicesCount\":%d}", count);
  ius_status status = ius_outbox_enqueue(outbox, target, patch, &error);
  if (status != IUS_STATUS_OK) fprintf(stderr, "  enqueue %s: %s\n", status_id, error ? error : "");
  CHECK(status == IUS_STATUS_OK);
  ius_string_free(error);
}

/* A flush on its own thread. */
struct flush_call {
  ius_outbox *outbox;
  ius_status status;
  char *report;
  char *error;
  int done;
  pthread_t thread;
};

static void *flush_main(void *arg) {
  struct flush_call *call = (struct flush_call *)arg;
  call->status = ius_outbox_flush(call->outbox, &call->report, &call->error);
  __atomic_store_n(&call->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void flush_start(struct flush_call *call, ius_outbox *outbox) {
  memset(call, 0, sizeof *call);
  call->outbox = outbox;
  pthread_create(&call->thread, NULL, flush_main, call);
}

/* Joins the flush: see join_within. */
static long flush_join(struct flush_call *call, long since) {
  return join_within(&call->done, call->thread, since);
}

/* Checks that the interrupted flush returned CANCELLED promptly (`took`), its error naming
 * `stage`, and its report holding `expected` (a fragment of the report JSON); frees both. */
static void expect_cancelled_flush(struct flush_call *call, long took, const char *stage,
                                   const char *expected) {
  if (took < 0 || took > bound_ms || call->status != IUS_STATUS_CANCELLED ||
      call->report == NULL || strstr(call->report, expected) == NULL)
    fprintf(stderr, "  flush: %s after %ld ms: %s %s\n", ius_status_name(call->status), took,
            call->report ? call->report : "(no report)", call->error ? call->error : "");
  CHECK(took >= 0 && took <= bound_ms);
  CHECK(call->status == IUS_STATUS_CANCELLED);
  CHECK(call->error != NULL && strstr(call->error, "\"status\":\"CANCELLED\"") != NULL);
  CHECK(call->error != NULL && strstr(call->error, stage) != NULL);
  CHECK(call->report != NULL && strstr(call->report, expected) != NULL);
  ius_string_free(call->report);
  ius_string_free(call->error);
}

/* One flush that must succeed with `expected` in its report. */
static void flush_ok(ius_outbox *outbox, const char *expected) {
  char *report = NULL, *error = NULL;
  ius_status status = ius_outbox_flush(outbox, &report, &error);
  if (status != IUS_STATUS_OK || report == NULL || strstr(report, expected) == NULL)
    fprintf(stderr, "  flush: %s %s %s\n", ius_status_name(status), report ? report : "",
            error ? error : "");
  CHECK(status == IUS_STATUS_OK && error == NULL);
  CHECK(report != NULL && strstr(report, expected) != NULL);
  ius_string_free(report);
  ius_string_free(error);
}

/* ob0, ob1 and ostall in one batch that gets no answer (ob0 and ob1 are applied first): the
 * interrupt abandons it, the three stay pending, and the next flush delivers them. */
static void outbox_flush_stalled(void) {
  ius_client *client = new_client(",\"retry\":{\"baseDelayMs\":10}");
  ius_outbox *outbox = open_outbox(client, "stalled.db");
  struct flush_call call;
  outbox_enqueue(outbox, "ob0", 1);
  outbox_enqueue(outbox, "ob1", 1);
  outbox_enqueue(outbox, "ostall", 1);
  long requests = ius_test_stat(base_url, "requests");
  flush_start(&call, outbox);
  /* The envelope and its three items. */
  CHECK(wait_for_stat("requests", requests + 4));
  ius_test_sleep_ms(100);
  long interrupted = ius_test_now_ms();
  ius_outbox_interrupt(outbox);
  expect_cancelled_flush(&call, flush_join(&call, interrupted), "response",
                         "{\"sent\":3,\"applied\":0,\"retryLater\":0,\"failed\":0,\"skipped\":0,"
                         "\"interrupted\":3,\"pending\":3,");
  /* A flush started after their backoff is not affected: it delivers the three. */
  ius_test_sleep_ms(backoff_ms);
  flush_ok(outbox, "{\"sent\":3,\"applied\":3,");
  ius_outbox_free(outbox);
  ius_client_free(client);
}

/* oa and owait (503, Retry-After 30): the client's interrupt ends its outbox's flush in the wait. */
static void outbox_flush_client_interrupt(void) {
  ius_client *client = new_client(",\"retry\":{\"baseDelayMs\":10}");
  ius_outbox *outbox = open_outbox(client, "client.db");
  struct flush_call call;
  outbox_enqueue(outbox, "oa", 1);
  outbox_enqueue(outbox, "owait", 1);
  long requests = ius_test_stat(base_url, "requests");
  flush_start(&call, outbox);
  CHECK(wait_for_stat("requests", requests + 3));
  ius_test_sleep_ms(settle_ms);
  long interrupted = ius_test_now_ms();
  ius_client_interrupt(client);
  expect_cancelled_flush(&call, flush_join(&call, interrupted), "Retry-After",
                         "{\"sent\":2,\"applied\":1,\"retryLater\":0,\"failed\":0,\"skipped\":0,"
                         "\"interrupted\":1,\"pending\":1,");
  CHECK(ius_test_stat(base_url, "requests") == requests + 3);
  ius_test_sleep_ms(backoff_ms);
  flush_ok(outbox, "{\"sent\":1,\"applied\":1,\"retryLater\":0,\"failed\":0,\"skipped\":0,"
                   "\"interrupted\":0,\"pending\":0,\"nextAttemptInSeconds\":null,"
                   "\"stoppedBy\":null}");
  ius_outbox_free(outbox);
  ius_client_free(client);
}

/* Two handles on one file: the holder's flush stalls on olock0 (no answer), the waiter's waits for
 * the flush lock until its interrupt, having sent nothing; then the holder is interrupted too. */
static void outbox_flush_lock(void) {
  ius_client *client = new_client(",\"retry\":{\"baseDelayMs\":10}");
  ius_outbox *holder = open_outbox(client, "lock.db");
  ius_outbox *waiter = open_outbox(client, "lock.db");
  struct flush_call holding, waiting;
  outbox_enqueue(holder, "olock0", 1);
  long requests = ius_test_stat(base_url, "requests");
  flush_start(&holding, holder);
  CHECK(wait_for_stat("requests", requests + 2));
  outbox_enqueue(waiter, "olock1", 1);
  flush_start(&waiting, waiter);
  ius_test_sleep_ms(settle_ms);
  long interrupted = ius_test_now_ms();
  ius_outbox_interrupt(waiter);
  expect_cancelled_flush(&waiting, flush_join(&waiting, interrupted), "flush lock",
                         "{\"sent\":0,\"applied\":0,\"retryLater\":0,\"failed\":0,\"skipped\":0,"
                         "\"interrupted\":0,\"pending\":2,");
  CHECK(!__atomic_load_n(&holding.done, __ATOMIC_SEQ_CST));
  CHECK(ius_test_stat(base_url, "requests") == requests + 2);
  interrupted = ius_test_now_ms();
  ius_outbox_interrupt(holder);
  expect_cancelled_flush(&holding, flush_join(&holding, interrupted), "response",
                         "{\"sent\":1,\"applied\":0,\"retryLater\":0,\"failed\":0,\"skipped\":0,"
                         "\"interrupted\":1,\"pending\":2,");
  ius_test_sleep_ms(backoff_ms);
  flush_ok(waiter, "{\"sent\":2,\"applied\":2,");
  ius_outbox_free(holder);
  ius_outbox_free(waiter);
  ius_client_free(client);
}

int main(int argc, char **argv) {
  char name[64];
  char kind_upper[16];
  const char *variant = getenv("IUS_TEST_VARIANT");
  if (argc != 2 || strlen(argv[1]) >= sizeof kind_upper) return 2;
  for (size_t i = 0; i <= strlen(argv[1]); i++)
    kind_upper[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 32 : argv[1][i]);
  snprintf(name, sizeof name, "IUS_INTERRUPT_%s_URL", kind_upper);
  base_url = ius_env(name);
  token = ius_env("IUS_TEST_TOKEN");
  if (variant != NULL && strcmp(variant, "valgrind") == 0) {
    bound_ms = 5000;
    settle_ms = 2000;
  }

  outbox_kind = argv[1];
  snprintf(outbox_dir, sizeof outbox_dir, "%s", ius_env("IUS_OUTBOX_DIR"));

  /* NULL is allowed and does nothing. */
  ius_client_interrupt(NULL);
  ius_outbox_interrupt(NULL);

  stalled_response();
  retry_after_wait();
  pacing_gate();
  token_callback_waiter();
  token_callback_waiter_out_of_budget();
  bulk_call_interrupted();
  outbox_flush_stalled();
  outbox_flush_client_interrupt();
  outbox_flush_lock();
  return ius_summary();
}
