/* Authentication through the C API: app-only credentials (client secret, certificate) against the
 * emulator's token endpoint, the token callback, the log callback, and their argument checks.
 * This program checks what C sees; the driver (tests/c_api.rs) then checks what the emulator saw
 * (one token request per app, the issued token on every PATCH, nothing sent after a failure).
 *
 * Usage: test_c_auth KIND (shared or static). The environment (set by tests/c_api.rs) names this
 * kind's emulator (IUS_AUTH_<KIND>_URL), its tenant and apps (IUS_AUTH_TENANT,
 * IUS_AUTH_SECRET_APP, IUS_AUTH_LOG_APP, IUS_AUTH_WRONG_APP with IUS_AUTH_SECRET; IUS_AUTH_CERT_APP
 * with the PEM files IUS_AUTH_CERT_FILE and IUS_AUTH_KEY_FILE), and the static token Graph also
 * accepts (IUS_TEST_TOKEN), which the token callbacks hand out. */
#include <time.h>

#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)
#define THREADS 4
#define UPDATES_PER_THREAD 10

static const char *url, *tenant, *secret, *token;

static int has(const char *json, const char *needle) {
  return json != NULL && json != SENTINEL && strstr(json, needle) != NULL;
}

/* Checks that `text` contains (want != 0) or lacks `needle`, saying which when it fails. */
#define CHECK_HAS(text, needle, want)                                                       \
  do {                                                                                      \
    int found_ = has((text), (needle));                                                     \
    if (found_ != (want))                                                                   \
      fprintf(stderr, "  expected %s\"%s\" in %s\n", (want) ? "" : "no ", (needle),         \
              (text) && (text) != SENTINEL ? (text) : "(null)");                            \
    CHECK(found_ == (want));                                                                \
  } while (0)

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds) {
  struct timespec ts;
  if (seconds <= 0) return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
}

/* The file at the path in environment variable `name`, escaped for a JSON string (malloc'd). */
static char *json_escaped_file(const char *name) {
  const char *path = ius_env(name);
  FILE *file = fopen(path, "rb");
  char *out;
  size_t n = 0;
  int c;
  if (file == NULL) {
    perror(path);
    exit(2);
  }
  out = (char *)malloc(16384);
  while ((c = fgetc(file)) != EOF && n < 16380) {
    if (c == '\n') {
      out[n++] = '\\';
      out[n++] = 'n';
    } else if (c != '\r') {
      out[n++] = (char)c;
    }
  }
  out[n] = '\0';
  fclose(file);
  return out;
}

/* config_json for app `client_id` with client secret `client_secret` (authorityHost = emulator). */
static char *secret_config(const char *client_id, const char *client_secret) {
  static char buf[2][1024];
  static int next;
  char *out = buf[next++ % 2];
  snprintf(out, sizeof buf[0],
           "{\"baseUrl\":\"%s\",\"authorityHost\":\"%s\",\"auth\":{\"tenantId\":\"%s\","
           "\"clientId\":\"%s\",\"clientSecret\":\"%s\"},\"retry\":{\"baseDelayMs\":50}}",
           url, url, tenant, client_id, client_secret);
  return out;
}

static ius_client *must_create(const char *config_json) {
  ius_client *client = NULL;
  char *error = NULL;
  if (ius_client_new(config_json, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new: %s\n", error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

struct worker {
  const ius_client *client;
  char status_id[32];
  int failures;
  pthread_t thread;
};

static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  int n;
  for (n = 1; n <= UPDATES_PER_THREAD; n++) {
    char *error = NULL;
    if (ius_test_update(w->client, w->status_id, n, &error) != IUS_STATUS_OK) {
      fprintf(stderr, "  %s update %d: %s\n", w->status_id, n, error ? error : "(null)");
      w->failures++;
    }
    ius_string_free(error);
  }
  return NULL;
}

/* THREADS threads x UPDATES_PER_THREAD updates on `<prefix>-t<i>`; returns the failures. */
static int run_threads(const ius_client *client, const char *prefix) {
  struct worker workers[THREADS];
  int i, failures = 0;
  for (i = 0; i < THREADS; i++) {
    workers[i].client = client;
    workers[i].failures = 0;
    snprintf(workers[i].status_id, sizeof workers[i].status_id, "%s-t%d", prefix, i);
    CHECK(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(workers[i].thread, NULL);
    failures += workers[i].failures;
  }
  return failures;
}

/* Client secret: many updates from several threads; the driver checks one token request. */
static void test_client_secret(void) {
  ius_client *client = must_create(secret_config(ius_env("IUS_AUTH_SECRET_APP"), secret));
  CHECK(run_threads(client, "secret") == 0);
  ius_client_free(client);
}

/* Certificate: RS256 assertions, an explicit scope; the key file is PKCS#8. */
static void test_certificate(void) {
  char *cert = json_escaped_file("IUS_AUTH_CERT_FILE");
  char *key = json_escaped_file("IUS_AUTH_KEY_FILE");
  size_t size = strlen(cert) + strlen(key) + 1024;
  char *config_json = (char *)malloc(size);
  ius_client *client;
  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"authorityHost\":\"%s\",\"scope\":"
           "\"https://graph.microsoft.com/.default\",\"auth\":{\"tenantId\":\"%s\",\"clientId\":"
           "\"%s\",\"certificatePem\":\"%s\",\"privateKeyPem\":\"%s\",\"algorithm\":\"RS256\"}}",
           url, url, tenant, ius_env("IUS_AUTH_CERT_APP"), cert, key);
  client = must_create(config_json);
  ius_test_update_ok(client, "cert-1", 1);
  ius_test_update_ok(client, "cert-1", 2);
  ius_client_free(client);

  /* A key that is not a key: CONFIG naming it, and the PEM text is not echoed. */
  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"auth\":{\"tenantId\":\"%s\",\"clientId\":\"x\","
           "\"certificatePem\":\"%s\",\"privateKeyPem\":\"not-a-key-S3CRET\"}}",
           url, tenant, cert);
  {
    char *error = SENTINEL;
    client = (ius_client *)SENTINEL;
    CHECK(ius_client_new(config_json, &client, &error) == IUS_STATUS_CONFIG);
    CHECK(client == NULL);
    CHECK_HAS(error, "\"field\":\"auth.privateKeyPem\"", 1);
    CHECK_HAS(error, "S3CRET", 0);
    ius_string_free(error);
  }
  free(config_json);
  free(cert);
  free(key);
}

/* A wrong secret: AUTH with the token endpoint's ids; nothing reaches Graph (driver). */
static void test_wrong_secret(void) {
  ius_client *client = must_create(secret_config(ius_env("IUS_AUTH_WRONG_APP"), "not-the-secret"));
  char *error = SENTINEL;
  ius_status status = ius_test_update(client, "wrong-1", 1, &error);
  CHECK(status == IUS_STATUS_AUTH);
  CHECK_HAS(error, "\"status\":\"AUTH\"", 1);
  CHECK_HAS(error, "\"aadsts\":\"AADSTS7000215\"", 1);
  CHECK_HAS(error, "\"error\":\"invalid_client\"", 1);
  CHECK_HAS(error, "\"httpStatus\":401", 1);
  CHECK_HAS(error, "\"traceId\":\"", 1);
  CHECK_HAS(error, "\"correlationId\":\"", 1);
  CHECK_HAS(error, "\"attempts\"", 0);
  CHECK_HAS(error, "not-the-secret", 0);
  ius_string_free(error);
  ius_client_free(client);
}

/* Config errors of the auth keys name the field and never echo a secret. */
static void test_auth_config_errors(void) {
  char config_json[1024];
  const struct {
    const char *extra; /* after {"baseUrl":url, */
    const char *field;
  } cases[] = {
      {"\"accessToken\":\"S3CRET\",\"auth\":{\"accessToken\":\"S3CRET\"}", "auth"},
      {"\"auth\":{\"tenantId\":\"t\",\"clientId\":\"a\",\"clientSecret\":\"S3CRET\","
       "\"certificatePem\":\"S3CRET\",\"privateKeyPem\":\"S3CRET\"}",
       "auth.clientSecret"},
      {"\"auth\":{\"tenantId\":\"t\",\"clientId\":\"a\",\"password\":\"S3CRET\"}", "auth.password"},
      {"\"auth\":{\"tenantId\":\"t\",\"clientId\":\"\",\"clientSecret\":\"S3CRET\"}",
       "auth.clientId"},
      {"\"accessToken\":\"S3CRET\",\"scope\":\"api://x/.default\"", "scope"},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char field[64];
    ius_client *client = (ius_client *)SENTINEL;
    char *error = SENTINEL;
    snprintf(config_json, sizeof config_json, "{\"baseUrl\":\"%s\",%s}", url, cases[i].extra);
    snprintf(field, sizeof field, "\"field\":\"%s\"", cases[i].field);
    CHECK(ius_client_new(config_json, &client, &error) == IUS_STATUS_CONFIG);
    CHECK(client == NULL);
    CHECK_HAS(error, field, 1);
    CHECK_HAS(error, "S3CRET", 0);
    ius_string_free(error);
  }
}

/* ---- The token callback -------------------------------------------------------------------- */

enum cb_mode {
  CB_OK,          /* the token, for `lifetime` seconds */
  CB_STALE_FIRST, /* a token Graph refuses first, then the token */
  CB_GROW_FIRST,  /* asks for a larger buffer first, then the token */
  CB_FAIL,        /* fails with a message */
  CB_HUGE,        /* asks for 1 MiB */
};

struct cb_state {
  pthread_mutex_t lock;
  enum cb_mode mode;
  int64_t lifetime;
  int calls;
  int concurrent, max_concurrent;
  double first_call;
  size_t first_len, last_len;
};

static void cb_init(struct cb_state *s, enum cb_mode mode, int64_t lifetime) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  s->mode = mode;
  s->lifetime = lifetime;
}

static int cb_calls(struct cb_state *s) {
  int calls;
  pthread_mutex_lock(&s->lock);
  calls = s->calls;
  pthread_mutex_unlock(&s->lock);
  return calls;
}

static int32_t token_callback(void *user_data, char *buffer, size_t len, int64_t *expires_in) {
  struct cb_state *s = (struct cb_state *)user_data;
  int call;
  const char *give = token;
  pthread_mutex_lock(&s->lock);
  call = ++s->calls;
  if (call == 1) {
    s->first_call = now_seconds();
    s->first_len = len;
  }
  s->last_len = len;
  if (++s->concurrent > s->max_concurrent) s->max_concurrent = s->concurrent;
  pthread_mutex_unlock(&s->lock);
  sleep_seconds(0.02); /* long enough for other threads to arrive while this call runs */
  pthread_mutex_lock(&s->lock);
  s->concurrent--;
  pthread_mutex_unlock(&s->lock);

  switch (s->mode) {
    case CB_FAIL:
      snprintf(buffer, len, "agent identity service is down");
      return -7;
    case CB_HUGE:
      return 1 << 20;
    case CB_GROW_FIRST:
      if (call == 1) return (int32_t)(len + 1);
      break;
    case CB_STALE_FIRST:
      if (call == 1) give = "stale-token";
      break;
    case CB_OK:
      break;
  }
  if (strlen(give) + 1 > len) return (int32_t)(strlen(give) + 1);
  memcpy(buffer, give, strlen(give) + 1);
  *expires_in = s->lifetime;
  return 0;
}

static ius_client *callback_client(struct cb_state *s) {
  char config_json[512];
  ius_client *client = NULL;
  char *error = NULL;
  snprintf(config_json, sizeof config_json, "{\"baseUrl\":\"%s\",\"retry\":{\"baseDelayMs\":50}}",
           url);
  if (ius_client_new_with_token_callback(config_json, token_callback, s, &client, &error) !=
      IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new_with_token_callback: %s\n", error ? error : "(null)");
    exit(2);
  }
  CHECK(cb_calls(s) == 0); /* not called until a token is needed */
  return client;
}

static void test_token_callback(void) {
  struct cb_state s;
  ius_client *client;
  char *error;
  double since_first;

  /* Many updates from several threads: one call, never two at once. */
  cb_init(&s, CB_OK, 3600);
  client = callback_client(&s);
  CHECK(run_threads(client, "cb") == 0);
  CHECK(cb_calls(&s) == 1);
  CHECK(s.max_concurrent == 1);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  /* A 2 s lifetime is refreshed at half-life: one call for updates within the first second,
   * another after it. (Timing-dependent counts are only checked when the machine kept up.) */
  cb_init(&s, CB_OK, 2);
  client = callback_client(&s);
  ius_test_update_ok(client, "cb-1", 1);
  ius_test_update_ok(client, "cb-1", 2);
  since_first = now_seconds() - s.first_call;
  if (since_first < 0.9) CHECK(cb_calls(&s) == 1);
  sleep_seconds(1.3 - since_first);
  ius_test_update_ok(client, "cb-1", 3);
  CHECK(cb_calls(&s) == 2);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  /* Graph refuses the first token (401): the client asks once more and the update lands. */
  cb_init(&s, CB_STALE_FIRST, 3600);
  client = callback_client(&s);
  ius_test_update_ok(client, "cb-2", 1);
  CHECK(cb_calls(&s) == 2);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  /* A callback that needs a larger buffer says so and gets one. */
  cb_init(&s, CB_GROW_FIRST, 3600);
  client = callback_client(&s);
  ius_test_update_ok(client, "cb-3", 1);
  CHECK(cb_calls(&s) == 2);
  CHECK(s.first_len > 0 && s.last_len >= s.first_len + 1);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  /* A failing callback: AUTH with its message, nothing sent; the next update asks again. */
  cb_init(&s, CB_FAIL, 3600);
  client = callback_client(&s);
  error = SENTINEL;
  CHECK(ius_test_update(client, "cbfail-1", 1, &error) == IUS_STATUS_AUTH);
  CHECK_HAS(error, "\"status\":\"AUTH\"", 1);
  CHECK_HAS(error, "returned -7", 1);
  CHECK_HAS(error, "agent identity service is down", 1);
  CHECK_HAS(error, "\"attempts\"", 0);
  ius_string_free(error);
  error = NULL;
  CHECK(ius_test_update(client, "cbfail-1", 2, &error) == IUS_STATUS_AUTH);
  ius_string_free(error);
  CHECK(cb_calls(&s) == 2);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  /* A token too large for any buffer. */
  cb_init(&s, CB_HUGE, 3600);
  client = callback_client(&s);
  error = NULL;
  CHECK(ius_test_update(client, "cbfail-1", 3, &error) == IUS_STATUS_AUTH);
  CHECK_HAS(error, "at most", 1);
  ius_string_free(error);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);
}

static void test_token_callback_arguments(void) {
  struct cb_state s;
  ius_client *client;
  char *error;
  char config_json[512];
  const struct {
    const char *extra;
    const char *field;
  } credentials[] = {
      {",\"accessToken\":\"S3CRET\"", "accessToken"},
      {",\"auth\":{\"accessToken\":\"S3CRET\"}", "auth"},
      {",\"auth\":{\"tenantId\":\"t\",\"clientId\":\"a\",\"clientSecret\":\"S3CRET\"}", "auth"},
      {",\"authorityHost\":\"https://login.microsoftonline.us\"", "authorityHost"},
  };
  size_t i;
  cb_init(&s, CB_OK, 3600);
  snprintf(config_json, sizeof config_json, "{\"baseUrl\":\"%s\"}", url);

  client = (ius_client *)SENTINEL;
  error = SENTINEL;
  CHECK(ius_client_new_with_token_callback(NULL, token_callback, &s, &client, &error) ==
        IUS_STATUS_NULL_ARGUMENT);
  CHECK(client == NULL);
  CHECK_HAS(error, "\"field\":\"config_json\"", 1);
  ius_string_free(error);

  client = (ius_client *)SENTINEL;
  error = SENTINEL;
  CHECK(ius_client_new_with_token_callback(config_json, NULL, &s, &client, &error) ==
        IUS_STATUS_NULL_ARGUMENT);
  CHECK(client == NULL);
  CHECK_HAS(error, "\"field\":\"callback\"", 1);
  ius_string_free(error);

  error = SENTINEL;
  CHECK(ius_client_new_with_token_callback(config_json, token_callback, &s, NULL, &error) ==
        IUS_STATUS_NULL_ARGUMENT);
  CHECK_HAS(error, "\"field\":\"out_client\"", 1);
  ius_string_free(error);

  /* NULL out_error_json is fine; NULL user_data too. */
  client = NULL;
  CHECK(ius_client_new_with_token_callback("{", token_callback, NULL, &client, NULL) ==
        IUS_STATUS_INVALID_JSON);
  CHECK(ius_client_new_with_token_callback(config_json, token_callback, NULL, &client, NULL) ==
        IUS_STATUS_OK);
  CHECK(client != NULL);
  ius_client_free(client);

  for (i = 0; i < sizeof credentials / sizeof credentials[0]; i++) {
    char bad[512], field[64];
    snprintf(bad, sizeof bad, "{\"baseUrl\":\"%s\"%s}", url, credentials[i].extra);
    snprintf(field, sizeof field, "\"field\":\"%s\"", credentials[i].field);
    client = (ius_client *)SENTINEL;
    error = SENTINEL;
    CHECK(ius_client_new_with_token_callback(bad, token_callback, &s, &client, &error) ==
          IUS_STATUS_CONFIG);
    CHECK(client == NULL);
    CHECK_HAS(error, field, 1);
    CHECK_HAS(error, "S3CRET", 0);
    ius_string_free(error);
  }
  CHECK(cb_calls(&s) == 0);
  pthread_mutex_destroy(&s.lock);
}

/* ---- The log callback ---------------------------------------------------------------------- */

static void test_log_callback(void) {
  struct ius_log_capture c;
  struct cb_state s;
  ius_client *client;
  int count;
  memset(&c, 0, sizeof c);
  pthread_mutex_init(&c.lock, NULL);

  CHECK(ius_set_log_callback(ius_capture_log, &c, 0) == IUS_STATUS_INVALID_INPUT);
  CHECK(ius_set_log_callback(ius_capture_log, &c, (ius_log_level)6) == IUS_STATUS_INVALID_INPUT);
  CHECK(ius_set_log_callback(NULL, NULL, 0) == IUS_STATUS_OK);
  CHECK(ius_set_log_callback(ius_capture_log, &c, IUS_LOG_LEVEL_DEBUG) == IUS_STATUS_OK);

  /* A secret client (a token request), and a callback client whose first token Graph refuses. */
  client = must_create(secret_config(ius_env("IUS_AUTH_LOG_APP"), secret));
  ius_test_update_ok(client, "log-1", 1);
  ius_test_update_ok(client, "log-1", 2);
  ius_client_free(client);
  cb_init(&s, CB_STALE_FIRST, 3600);
  client = callback_client(&s);
  ius_test_update_ok(client, "log-2", 1);

  /* Off: nothing more arrives, and c may be freed. */
  CHECK(ius_set_log_callback(NULL, NULL, IUS_LOG_LEVEL_TRACE) == IUS_STATUS_OK);
  count = c.count;
  ius_test_update_ok(client, "log-2", 2);
  CHECK(c.count == count);
  ius_client_free(client);
  pthread_mutex_destroy(&s.lock);

  CHECK(count >= 5);
  CHECK(c.bad_level == 0);
  CHECK_HAS(c.text, "PATCH /beta/deviceManagement/deviceConfigurations/c1/userStatuses/log-1", 1);
  CHECK_HAS(c.text, "attempt=1", 1);
  CHECK_HAS(c.text, "HTTP 204", 1);
  CHECK_HAS(c.text, "HTTP 401", 1);
  CHECK_HAS(c.text, "token request:", 1);
  CHECK_HAS(c.text, "token callback:", 1);
  /* Never a secret, a token (the emulator's start with ius-emulator-at.), an assertion or a key. */
  CHECK_HAS(c.text, secret, 0);
  CHECK_HAS(c.text, token, 0);
  CHECK_HAS(c.text, "stale-token", 0);
  CHECK_HAS(c.text, "ius-emulator-at.", 0);
  CHECK_HAS(c.text, "Bearer", 0);
  CHECK_HAS(c.text, "eyJ", 0);
  free(c.text);
  pthread_mutex_destroy(&c.lock);
}

int main(int argc, char **argv) {
  char name[64], kind_upper[16];
  /* test_support.h's canned server is not needed here. */
  (void)ius_canned_start;
  (void)ius_canned_join;
  ius_kind_upper(argc, argv, kind_upper, sizeof kind_upper);
  snprintf(name, sizeof name, "IUS_AUTH_%s_URL", kind_upper);
  url = ius_env(name);
  tenant = ius_env("IUS_AUTH_TENANT");
  secret = ius_env("IUS_AUTH_SECRET");
  token = ius_env("IUS_TEST_TOKEN");

  test_auth_config_errors();
  test_token_callback_arguments();
  test_client_secret();
  test_certificate();
  test_wrong_secret();
  test_token_callback();
  test_log_callback();
  return ius_summary();
}
