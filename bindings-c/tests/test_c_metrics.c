/* ius_client_metrics through the C API: a known sequence of updates (one answered 429 with
 * Retry-After 0.2, one 404, one 401 answered by a fresh token, five successes), then every counter
 * of the metrics JSON checked exactly, the latency histograms by their totals; the
 * out-parameters on every return; a bulk call's $batch items.
 *
 * Usage: test_c_metrics KIND (shared or static). The environment (set by tests/c_api.rs) names
 * this kind's emulator (IUS_METRICS_<KIND>_URL: c1/throttled answers its first PATCH 429 with
 * Retry-After 0.2, c1/refused its first 401; c1/ok0 .. ok4 and c1/m0 .. m2 are plain; c1/missing
 * does not exist), its app (IUS_AUTH_TENANT, IUS_METRICS_APP, IUS_AUTH_SECRET) and the bytes of
 * the three error bodies the sequence receives (IUS_METRICS_RECEIVED). */
#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)
#define SUCCESSES 5

/* The number at `path` (keys separated by '/') in `json`, or -1 when a key is missing. Keys are
 * looked for in order, each after the one before, which finds a key of a nested object because
 * the metrics JSON lists every key of every object. */
static long metric(const char *json, const char *path) {
  char key[64];
  const char *at = json;
  while (*path != '\0') {
    size_t n = strcspn(path, "/");
    if (n + 4 > sizeof key) return -1;
    key[0] = '"';
    memcpy(key + 1, path, n);
    memcpy(key + 1 + n, "\":", 3);
    at = strstr(at, key);
    if (at == NULL) return -1;
    at += n + 3;
    path += n + (path[n] == '/');
  }
  return strtol(at, NULL, 10);
}

/* Checks one counter, saying which and what it held when it fails. */
static void check_metric(const char *json, const char *path, long want) {
  long got = metric(json, path);
  if (got != want) fprintf(stderr, "  %s: %ld, expected %ld\n", path, got, want);
  CHECK(got == want);
}

static const char *const OPERATIONS[] = {"update", "get", "list", "create",
                                         "delete", "batch", "token"};
static const char *const CLASSES[] = {"2xx", "400", "401", "403", "404", "409", "412",
                                      "429", "otherClientError", "5xx", "transport",
                                      "timeout", "cancelled"};
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* The expected value of a counter of `expected` (path, value pairs ending with NULL), else 0. */
struct expected {
  const char *path;
  long value;
};

static long expected_value(const struct expected *expected, const char *path) {
  for (; expected->path != NULL; expected++)
    if (strcmp(expected->path, path) == 0) return expected->value;
  return 0;
}

/* Every counter outside the histograms: requests per operation and class, retries, holds, waits,
 * batch items, tokens, bytes; and each histogram's count (its `sent`) and buckets adding up. */
static void check_all(const char *json, const struct expected *expected) {
  static const char *const others[] = {
      "retries/429",         "retries/503",           "retries/504",
      "retries/transport",   "retries/401Refresh",    "throttleHolds/count",
      "throttleHolds/totalMs", "pacingWaits/count",   "pacingWaits/totalMs",
      "batchItems/sent",     "batchItems/retried",    "batchItems/failed",
      "tokens/fetched",      "tokens/failed",         "tokens/refreshedBeforeExpiry",
      "tokens/after401",     "bytes/sent",            "bytes/received"};
  static const char *const bounds[] = {"1",   "2",    "5",    "10",   "20",   "50",   "100",
                                       "200", "500", "1000", "2000", "5000", "10000", "+Inf"};
  char path[128];
  for (size_t o = 0; o < COUNT(OPERATIONS); o++) {
    long sent, in_buckets = 0;
    snprintf(path, sizeof path, "requests/%s/sent", OPERATIONS[o]);
    sent = expected_value(expected, path);
    check_metric(json, path, sent);
    for (size_t c = 0; c < COUNT(CLASSES); c++) {
      snprintf(path, sizeof path, "requests/%s/answered/%s", OPERATIONS[o], CLASSES[c]);
      check_metric(json, path, expected_value(expected, path));
    }
    snprintf(path, sizeof path, "latencyMs/%s/count", OPERATIONS[o]);
    check_metric(json, path, sent);
    for (size_t b = 0; b < COUNT(bounds); b++) {
      snprintf(path, sizeof path, "latencyMs/%s/buckets/%s", OPERATIONS[o], bounds[b]);
      in_buckets += metric(json, path);
    }
    if (in_buckets != sent) fprintf(stderr, "  %s buckets: %ld\n", OPERATIONS[o], in_buckets);
    CHECK(in_buckets == sent);
  }
  for (size_t i = 0; i < COUNT(others); i++)
    check_metric(json, others[i], expected_value(expected, others[i]));
}

/* The client's metrics JSON (which must be there); free it with ius_string_free. */
static char *metrics_of(const ius_client *client) {
  char *json = SENTINEL, *error = SENTINEL;
  ius_status status = ius_client_metrics(client, &json, &error);
  CHECK(status == IUS_STATUS_OK && error == NULL && json != NULL && json != SENTINEL);
  if (status != IUS_STATUS_OK || json == NULL || json == SENTINEL) {
    fprintf(stderr, "ius_client_metrics: %s\n", error && error != SENTINEL ? error : "(none)");
    exit(1);
  }
  return json;
}

int main(int argc, char **argv) {
  char kind[16], name[64], config_json[1024];
  const char *url, *body = "{\"devicesCount\":1}";
  long received;
  ius_client *client = NULL;
  char *error = NULL, *json;
  ius_kind_upper(argc, argv, kind, sizeof kind);
  snprintf(name, sizeof name, "IUS_METRICS_%s_URL", kind);
  url = ius_env(name);
  received = atol(ius_env("IUS_METRICS_RECEIVED"));
  snprintf(config_json, sizeof config_json,
           "{\"baseUrl\":\"%s\",\"authorityHost\":\"%s\",\"auth\":{\"tenantId\":\"%s\","
           "\"clientId\":\"%s\",\"clientSecret\":\"%s\"},\"retry\":{\"baseDelayMs\":10}}",
           url, url, ius_env("IUS_AUTH_TENANT"), ius_env("IUS_METRICS_APP"),
           ius_env("IUS_AUTH_SECRET"));
  if (ius_client_new(config_json, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new: %s\n", error ? error : "(no error JSON)");
    return 2;
  }

  /* Out-parameters on every return: a NULL client or out-pointer is refused, saying which. */
  {
    char *out = SENTINEL, *err = SENTINEL;
    CHECK(ius_client_metrics(NULL, &out, &err) == IUS_STATUS_NULL_ARGUMENT);
    CHECK(out == NULL && err != NULL && err != SENTINEL && strstr(err, "\"client\"") != NULL);
    ius_string_free(err);
    err = SENTINEL;
    CHECK(ius_client_metrics(client, NULL, &err) == IUS_STATUS_NULL_ARGUMENT);
    CHECK(err != NULL && err != SENTINEL && strstr(err, "out_metrics_json") != NULL);
    ius_string_free(err);
    out = SENTINEL;
    CHECK(ius_client_metrics(client, &out, NULL) == IUS_STATUS_OK);
    CHECK(out != NULL && out != SENTINEL && metric(out, "requests/update/sent") == 0);
    ius_string_free(out);
  }

  /* The known sequence. */
  {
    long started = ius_test_now_ms();
    ius_test_update_ok(client, "throttled", 1);
    CHECK(ius_test_now_ms() - started >= 190);
  }
  CHECK(ius_test_update(client, "missing", 1, &error) == IUS_STATUS_GRAPH);
  CHECK(error != NULL && strstr(error, "\"httpStatus\":404") != NULL);
  ius_string_free(error);
  error = NULL;
  ius_test_update_ok(client, "refused", 1);
  for (int i = 0; i < SUCCESSES; i++) {
    char id[16];
    snprintf(id, sizeof id, "ok%d", i);
    ius_test_update_ok(client, id, 1);
  }
  json = metrics_of(client);
  printf("the known sequence's metrics: %s\n", json);
  {
    const long updates = 2 + 1 + 2 + SUCCESSES;
    const struct expected expected[] = {
        {"requests/update/sent", updates},
        {"requests/update/answered/2xx", 2 + SUCCESSES},
        {"requests/update/answered/429", 1},
        {"requests/update/answered/404", 1},
        {"requests/update/answered/401", 1},
        {"requests/token/sent", 2},
        {"requests/token/answered/2xx", 2},
        {"retries/429", 1},
        {"retries/401Refresh", 1},
        {"throttleHolds/count", 1},
        {"throttleHolds/totalMs", 200},
        {"tokens/fetched", 2},
        {"tokens/after401", 1},
        {"bytes/sent", updates * (long)strlen(body)},
        {"bytes/received", received},
        {NULL, 0}};
    check_all(json, expected);
  }
  ius_string_free(json);

  /* A bulk call: its $batch request and its items, counted on top of the sequence's. */
  {
    const char *items =
        "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"m0\"},"
        "\"patch\":{\"devicesCount\":2}},"
        "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"m1\"},"
        "\"patch\":{\"devicesCount\":2}},"
        "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"nobody\"},"
        "\"patch\":{\"devicesCount\":2}}]";
    char *results = NULL;
    ius_status status = ius_update_user_statuses(client, items, &results, &error);
    CHECK(status == IUS_STATUS_PARTIAL);
    ius_string_free(results);
    ius_string_free(error);
    error = NULL;
    json = metrics_of(client);
    check_metric(json, "requests/batch/sent", 1);
    check_metric(json, "requests/batch/answered/2xx", 1);
    check_metric(json, "batchItems/sent", 3);
    check_metric(json, "batchItems/retried", 0);
    check_metric(json, "batchItems/failed", 1);
    check_metric(json, "latencyMs/batch/count", 1);
    check_metric(json, "requests/update/sent", 2 + 1 + 2 + SUCCESSES);
    ius_string_free(json);
  }

  ius_client_free(client);
  return ius_summary();
}
