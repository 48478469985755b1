/* Exercises every function of the C API against the emulator (URLs from the environment, set by
 * tests/c_api.rs) and a canned server. Usage: test_c_api PREFIX (PREFIX names this run's
 * thread-test statuses, e.g. "shared" -> shared-t0 .. shared-t7, seeded by the driver). */
#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)
#define THREADS 8
#define UPDATES_PER_THREAD 25
/* The one-shot servers answer once; a retry would find them gone (and take seconds). */
#define NO_RETRY ",\"retry\":{\"maxRetries\":0}"

static const char *base_url, *base_url_200, *token, *prefix;

static char *config(const char *url, const char *extra) {
  static char buf[4][1024];
  static int next;
  char *out = buf[next++ % 4];
  snprintf(out, sizeof buf[0], "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\"%s}", url, token,
           extra);
  return out;
}

static ius_client *client_for(const char *config_json) {
  ius_client *client = NULL;
  char *error = NULL;
  ius_status status = ius_client_new(config_json, &client, &error);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new(%s): %s\n", config_json, error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

/* True if `json` contains `needle` (the library writes compact JSON, so "key":value is exact). */
static int has(const char *json, const char *needle) {
  return json != NULL && strstr(json, needle) != NULL;
}

/* Checks a failed call: the status, the error JSON's status name, and one expected fragment. */
#define CHECK_ERROR(got, want, error, fragment)                                               \
  do {                                                                                        \
    CHECK((got) == (want));                                                                   \
    CHECK(has((error), "\"status\":\"") && has((error), ius_status_name(want)));              \
    CHECK(has((error), "\"message\":\""));                                                    \
    if (!has((error), (fragment)))                                                            \
      fprintf(stderr, "  expected %s in %s\n", (fragment), (error) ? (error) : "(null)");     \
    CHECK(has((error), (fragment)));                                                          \
  } while (0)

static void test_static_functions(void) {
  const char *version = ius_version();
  CHECK(version != NULL && strcmp(version, ius_env("IUS_TEST_VERSION")) == 0);
  /* The header's version macros agree with each other and with the library it is linked to. */
  char from_numbers[48];
  snprintf(from_numbers, sizeof from_numbers, "%d.%d.%d", IUS_VERSION_MAJOR, IUS_VERSION_MINOR,
           IUS_VERSION_PATCH);
  CHECK(strcmp(from_numbers, IUS_VERSION_STRING) == 0);
  CHECK(version != NULL && strcmp(version, IUS_VERSION_STRING) == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_OK), "OK") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_NULL_ARGUMENT), "NULL_ARGUMENT") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_INVALID_UTF8), "INVALID_UTF8") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_INVALID_JSON), "INVALID_JSON") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_INVALID_INPUT), "INVALID_INPUT") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_CONFIG), "CONFIG") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_AUTH), "AUTH") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_GRAPH), "GRAPH") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_THROTTLED), "THROTTLED") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_UNEXPECTED_RESPONSE), "UNEXPECTED_RESPONSE") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_TIMEOUT), "TIMEOUT") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_NETWORK), "NETWORK") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_TLS), "TLS") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_PANIC), "PANIC") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_INTERNAL), "INTERNAL") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_LOGGER_IN_USE), "LOGGER_IN_USE") == 0);
  CHECK(strcmp(ius_status_name(IUS_STATUS_CANCELLED), "CANCELLED") == 0);
  CHECK(IUS_STATUS_CANCELLED == 9);
  CHECK(strcmp(ius_status_name((ius_status)10), "UNKNOWN") == 0);
  CHECK(strcmp(ius_status_name((ius_status)0xFFFFFFFFu), "UNKNOWN") == 0);
  ius_string_free(NULL);
  ius_client_free(NULL);
  ius_client_interrupt(NULL);
}

static void check_bad_config(const char *config_json, ius_status want, const char *fragment) {
  ius_client *client = (ius_client *)SENTINEL;
  char *error = SENTINEL;
  ius_status got = ius_client_new(config_json, &client, &error);
  CHECK(client == NULL);
  CHECK_ERROR(got, want, error, fragment);
  CHECK(!has(error, "s3cr3t"));
  ius_string_free(error);
}

static void test_client_new(void) {
  ius_client *client = (ius_client *)SENTINEL;
  char *error = SENTINEL;
  ius_status got = ius_client_new(config(base_url, ""), &client, &error);
  CHECK(got == IUS_STATUS_OK && client != NULL && error == NULL);
  ius_client_free(client);
  /* A cloud config makes no request and needs no error pointer. */
  got = ius_client_new("{\"cloud\":\"usGov\",\"accessToken\":\"t\",\"apiVersion\":\"v1.0\"}",
                       &client, NULL);
  CHECK(got == IUS_STATUS_OK);
  ius_client_free(client);

  check_bad_config(NULL, IUS_STATUS_NULL_ARGUMENT, "\"field\":\"config_json\"");
  error = NULL;
  got = ius_client_new(config(base_url, ""), NULL, &error);
  CHECK_ERROR(got, IUS_STATUS_NULL_ARGUMENT, error, "\"field\":\"out_client\"");
  ius_string_free(error);
  CHECK(ius_client_new(NULL, &client, NULL) == IUS_STATUS_NULL_ARGUMENT && client == NULL);

  check_bad_config("{\"accessToken\":\"\xff\xfe\"}", IUS_STATUS_INVALID_UTF8,
                   "\"field\":\"config_json\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\"", IUS_STATUS_INVALID_JSON,
                   "\"field\":\"config_json\"");
  check_bad_config("not json", IUS_STATUS_INVALID_JSON, "\"field\":\"config_json\"");
  check_bad_config("[]", IUS_STATUS_CONFIG, "\"field\":\"config_json\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"bogus\":1}", IUS_STATUS_CONFIG,
                   "\"field\":\"bogus\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":{\"readMs\":5}}", IUS_STATUS_CONFIG,
                   "\"field\":\"timeouts.readMs\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":{\"connectMs\":0}}",
                   IUS_STATUS_CONFIG, "\"field\":\"timeouts.connectMs\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":{\"connectMs\":-1}}",
                   IUS_STATUS_CONFIG, "\"field\":\"timeouts.connectMs\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":{\"requestMs\":2.5}}",
                   IUS_STATUS_CONFIG, "\"field\":\"timeouts.requestMs\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":{\"requestMs\":1e30}}",
                   IUS_STATUS_CONFIG, "\"field\":\"timeouts.requestMs\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"timeouts\":\"fast\"}", IUS_STATUS_CONFIG,
                   "\"field\":\"timeouts\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"cloud\":\"mars\"}", IUS_STATUS_CONFIG,
                   "\"field\":\"cloud\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"apiVersion\":\"v2\"}", IUS_STATUS_CONFIG,
                   "\"field\":\"apiVersion\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"baseUrl\":\"http://graph.example\"}",
                   IUS_STATUS_CONFIG, "\"field\":\"baseUrl\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"baseUrl\":\"https://h.example/beta\"}",
                   IUS_STATUS_CONFIG, "\"field\":\"baseUrl\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"userAgent\":\"\"}", IUS_STATUS_CONFIG,
                   "\"field\":\"userAgent\"");
  check_bad_config("{\"accessToken\":\"s3cr3t\",\"fetchAfterNoContent\":1}", IUS_STATUS_CONFIG,
                   "\"field\":\"fetchAfterNoContent\"");
  check_bad_config("{\"baseUrl\":\"http://127.0.0.1:1\"}", IUS_STATUS_CONFIG,
                   "\"field\":\"accessToken\"");
}

/* One update whose failure is checked: the response set to NULL, error JSON as expected. */
static void check_bad_update(const ius_client *client, const char *cfg, const char *status_id,
                             const char *patch, ius_status want, const char *fragment) {
  char *response = SENTINEL, *error = SENTINEL;
  ius_status got = ius_update_user_status(client, cfg, status_id, patch, &response, &error);
  CHECK(response == NULL); /* set at entry, never left as it was */
  CHECK_ERROR(got, want, error, fragment);
  ius_string_free(error);
}

static void check_bad_target(const ius_client *client, const char *target, const char *patch,
                             ius_status want, const char *fragment) {
  char *response = SENTINEL, *error = SENTINEL;
  ius_status got = ius_update_user_status_at(client, target, patch, &response, &error);
  CHECK(response == NULL); /* set at entry, never left as it was */
  CHECK_ERROR(got, want, error, fragment);
  ius_string_free(error);
}

static void test_bad_input(void) {
  ius_client *client = client_for(config(base_url, ""));
  const char *ok = "{\"devicesCount\":1}";
  check_bad_update(NULL, "c1", "s1", ok, IUS_STATUS_NULL_ARGUMENT, "\"field\":\"client\"");
  check_bad_update(client, NULL, "s1", ok, IUS_STATUS_NULL_ARGUMENT,
                   "\"field\":\"device_configuration_id\"");
  check_bad_update(client, "c1", NULL, ok, IUS_STATUS_NULL_ARGUMENT,
                   "\"field\":\"user_status_id\"");
  check_bad_update(client, "c1", "s1", NULL, IUS_STATUS_NULL_ARGUMENT,
                   "\"field\":\"patch_json\"");
  check_bad_update(client, "c\xc3", "s1", ok, IUS_STATUS_INVALID_UTF8,
                   "\"field\":\"device_configuration_id\"");
  check_bad_update(client, "c1", "\xff", ok, IUS_STATUS_INVALID_UTF8,
                   "\"field\":\"user_status_id\"");
  check_bad_update(client, "c1", "s1", "{\"userDisplayName\":\"\xe2\x82\"}",
                   IUS_STATUS_INVALID_UTF8, "\"field\":\"patch_json\"");
  check_bad_update(client, "c1", "s1", "{devicesCount:1}", IUS_STATUS_INVALID_JSON,
                   "\"field\":\"patch_json\"");
  check_bad_update(client, "c1", "s1", "", IUS_STATUS_INVALID_JSON, "\"field\":\"patch_json\"");
  check_bad_update(client, "c1", "s1", "[1]", IUS_STATUS_INVALID_INPUT, "\"field\":\"patch\"");
  check_bad_update(client, "c1", "s1", "{}", IUS_STATUS_INVALID_INPUT, "\"field\":\"patch\"");
  check_bad_update(client, "c1", "s1", "{\"devicesCount\":\"3\"}", IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"devicesCount\"");
  check_bad_update(client, "c1", "s1", "{\"devicesCount\":2147483648}", IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"devicesCount\"");
  check_bad_update(client, "c1", "s1", "{\"devicesCount\":-1}", IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"devicesCount\"");
  check_bad_update(client, "c1", "s1", "{\"lastReportedDateTime\":\"yesterday\"}",
                   IUS_STATUS_INVALID_INPUT, "\"field\":\"lastReportedDateTime\"");
  check_bad_update(client, "c1", "s1", "{\"lastReportedDateTime\":\"2024-02-30T00:00:00Z\"}",
                   IUS_STATUS_INVALID_INPUT, "\"field\":\"lastReportedDateTime\"");
  check_bad_update(client, "c1", "s1", "{\"status\":\"green\"}", IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"status\"");
  check_bad_update(client, "c1", "s1", "{\"colour\":\"blue\"}", IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"colour\"");
  check_bad_update(client, "c1", "s1", "{\"id\":\"other\",\"devicesCount\":1}",
                   IUS_STATUS_INVALID_INPUT, "\"field\":\"id\"");
  check_bad_update(client, "", "s1", ok, IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"deviceConfigurationId\"");
  check_bad_update(client, "c1", "", ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"userStatusId\"");

  check_bad_target(NULL, "{}", ok, IUS_STATUS_NULL_ARGUMENT, "\"field\":\"client\"");
  check_bad_target(client, NULL, ok, IUS_STATUS_NULL_ARGUMENT, "\"field\":\"target_json\"");
  check_bad_target(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"s1\"}", NULL,
                   IUS_STATUS_NULL_ARGUMENT, "\"field\":\"patch_json\"");
  check_bad_target(client, "\xc0", ok, IUS_STATUS_INVALID_UTF8, "\"field\":\"target_json\"");
  check_bad_target(client, "{", ok, IUS_STATUS_INVALID_JSON, "\"field\":\"target_json\"");
  check_bad_target(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"s1\",\"x\":1}",
                   ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"x\"");
  check_bad_target(client,
                   "{\"deviceConfigurationId\":\"c1\",\"route\":\"certificates\","
                   "\"userStatusId\":\"s1\"}",
                   ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"route\"");
  check_bad_target(client,
                   "{\"deviceConfigurationId\":\"c1\",\"route\":\"microsoft.graph."
                   "windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation\","
                   "\"userStatusId\":\"s1\"}",
                   ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"certificateId\"");
  check_bad_target(client,
                   "{\"deviceConfigurationId\":\"c1\",\"route\":\"rootCertificate\","
                   "\"certificateId\":\"x\",\"userStatusId\":\"s1\"}",
                   ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"certificateId\"");
  check_bad_target(client,
                   "{\"deviceConfigurationId\":\"c1\",\"route\":\"rootCertificate\","
                   "\"userStatusId\":\"s1\",\"apiVersion\":\"v1.0\"}",
                   ok, IUS_STATUS_INVALID_INPUT, "\"field\":\"route\"");
  check_bad_target(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":7}", ok,
                   IUS_STATUS_INVALID_INPUT, "\"field\":\"userStatusId\"");
  check_bad_target(client, "{\"deviceConfigurationId\":\"c1\"}", ok, IUS_STATUS_INVALID_INPUT,
                   "\"field\":\"userStatusId\"");
  check_bad_target(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"s1\"}", "{}",
                   IUS_STATUS_INVALID_INPUT, "\"field\":\"patch\"");
  /* With no error pointer the status still tells. */
  CHECK(ius_update_user_status(client, "c1", "s1", "{}", NULL, NULL) ==
        IUS_STATUS_INVALID_INPUT);
  ius_client_free(client);
}

static void test_success(void) {
  ius_client *client = client_for(config(base_url, ""));
  char *response = SENTINEL, *error = SENTINEL;
  /* 204: success with no object. */
  ius_status got = ius_update_user_status(
      client, "c1", "s1", "{\"devicesCount\":5,\"status\":\"compliant\"}", &response, &error);
  CHECK(got == IUS_STATUS_OK && response == NULL && error == NULL);
  CHECK(ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":5}", NULL, NULL) ==
        IUS_STATUS_OK);
  /* An id that needs percent-encoding reaches the right status. */
  got = ius_update_user_status(client, "c1", "odd id/\xc3\xbc?", "{\"devicesCount\":9}",
                               &response, &error);
  CHECK(got == IUS_STATUS_OK && error == NULL);
  ius_client_free(client);

  /* 200: the updated object. */
  client = client_for(config(base_url_200, ",\"userAgent\":\"c-tests/1.0\""));
  response = SENTINEL;
  error = SENTINEL;
  got = ius_update_user_status(client, "c1", "s1",
                               "{\"devicesCount\":6,\"userDisplayName\":\"Ada\"}", &response,
                               &error);
  CHECK(got == IUS_STATUS_OK && error == NULL);
  CHECK(has(response, "\"id\":\"s1\"") && has(response, "\"devicesCount\":6") &&
        has(response, "\"userDisplayName\":\"Ada\""));
  ius_string_free(response);
  /* The response pointer may be NULL even when there is an object. */
  CHECK(ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":6}", NULL, NULL) ==
        IUS_STATUS_OK);
  ius_client_free(client);

  /* 204 with fetchAfterNoContent: the object read back with a GET; every documented path. */
  client = client_for(config(base_url, ",\"fetchAfterNoContent\":true"));
  {
    static const char *const targets[] = {
        "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"s1\",\"apiVersion\":\"v1.0\"}",
        "{\"deviceConfigurationId\":\"c1\",\"route\":\"identityCertificate/rootCertificate\","
        "\"userStatusId\":\"r1\"}",
        "{\"deviceConfigurationId\":\"c1\",\"route\":\"microsoft.graph."
        "windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/"
        "{windows81TrustedRootCertificateId}\",\"certificateId\":\"cert1\",\"userStatusId\":"
        "\"e1\"}",
        "{\"windowsAutopilotDeploymentProfileId\":\"p1\",\"userStatusId\":\"a1\"}",
    };
    size_t i;
    for (i = 0; i < sizeof targets / sizeof targets[0]; i++) {
      response = SENTINEL;
      error = SENTINEL;
      got = ius_update_user_status_at(client, targets[i],
                                      "{\"devicesCount\":42,\"status\":\"error\"}", &response,
                                      &error);
      if (got != IUS_STATUS_OK) fprintf(stderr, "  %s: %s\n", targets[i], error);
      CHECK(got == IUS_STATUS_OK && error == NULL);
      CHECK(has(response, "\"devicesCount\":42") && has(response, "\"status\":\"error\""));
      ius_string_free(response);
    }
  }
  ius_client_free(client);
}

static void test_service_errors(void) {
  ius_client *client = client_for(config(base_url, ""));
  char *response = SENTINEL, *error = SENTINEL;
  ius_status got =
      ius_update_user_status(client, "c1", "missing", "{\"devicesCount\":1}", &response, &error);
  CHECK(response == NULL); /* set at entry, never left as it was */
  CHECK_ERROR(got, IUS_STATUS_GRAPH, error, "\"httpStatus\":404");
  CHECK(has(error, "\"code\":\"ResourceNotFound\"") && has(error, "\"requestId\":\"") &&
        has(error, "\"clientRequestId\":\""));
  CHECK(!has(error, "retryAfterSeconds") && !has(error, "\"field\""));
  ius_string_free(error);
  ius_client_free(client);

  /* The emulator accepts only the configured token: Graph's 401 is a GRAPH error. */
  {
    char cfg[512];
    snprintf(cfg, sizeof cfg, "{\"baseUrl\":\"%s\",\"accessToken\":\"wrong-token\"}", base_url);
    client = client_for(cfg);
    got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", NULL, &error);
    CHECK_ERROR(got, IUS_STATUS_GRAPH, error, "\"httpStatus\":401");
    CHECK(!has(error, "wrong-token"));
    ius_string_free(error);
    ius_client_free(client);
  }
}

static void test_transport_errors(void) {
  char url[64], cfg[256];
  struct ius_canned canned;
  ius_client *client;
  char *error = NULL;
  ius_status got;
  int port;

  /* Nothing listens on port 1. */
  client = client_for(config("http://127.0.0.1:1", NO_RETRY));
  got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", NULL, &error);
  CHECK_ERROR(got, IUS_STATUS_NETWORK, error, "\"clientRequestId\":\"");
  ius_string_free(error);
  ius_client_free(client);

  /* A server that accepts the connection and never answers. */
  {
    ius_socket silent = ius_listen(&port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    client = client_for(
        config(url, NO_RETRY ",\"timeouts\":{\"connectMs\":1000,\"requestMs\":300}"));
    got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", NULL, &error);
    CHECK_ERROR(got, IUS_STATUS_TIMEOUT, error, "\"clientRequestId\":\"");
    ius_string_free(error);
    ius_client_free(client);
    ius_close_socket(silent);
  }

  /* 429 with a fractional Retry-After. */
  port = ius_canned_start(
      &canned,
      "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2.5\r\nrequest-id: rq-429\r\n"
      "Content-Type: application/json\r\nContent-Length: 58\r\nConnection: close\r\n\r\n"
      "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow down\"}}");
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  client = client_for(config(url, NO_RETRY));
  got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", NULL, &error);
  CHECK_ERROR(got, IUS_STATUS_THROTTLED, error, "\"retryAfterSeconds\":2.5");
  CHECK(has(error, "\"httpStatus\":429") && has(error, "\"code\":\"TooManyRequests\"") &&
        has(error, "\"requestId\":\"rq-429\""));
  ius_string_free(error);
  ius_client_free(client);
  ius_canned_join(&canned);

  /* 200 whose body is not a deviceConfigurationUserStatus. */
  port = ius_canned_start(&canned,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 7\r\nConnection: close\r\n\r\n[1,2,3]");
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  client = client_for(config(url, ""));
  {
    char *response = SENTINEL;
    got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", &response, &error);
    CHECK(response == NULL); /* set at entry, never left as it was */
  }
  CHECK_ERROR(got, IUS_STATUS_UNEXPECTED_RESPONSE, error, "\"httpStatus\":200");
  ius_string_free(error);
  ius_client_free(client);
  ius_canned_join(&canned);

  /* An https URL answered in plain text: the TLS handshake fails. */
  port = ius_canned_start(&canned, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  snprintf(cfg, sizeof cfg, "https://127.0.0.1:%d", port);
  client = client_for(config(cfg, NO_RETRY));
  got = ius_update_user_status(client, "c1", "s1", "{\"devicesCount\":1}", NULL, &error);
  CHECK_ERROR(got, IUS_STATUS_TLS, error, "\"clientRequestId\":\"");
  ius_string_free(error);
  ius_client_free(client);
  ius_canned_join(&canned);
}

struct worker {
  const ius_client *client;
  int index;
  int failures;
};

static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  char status_id[64], patch[128];
  int k;
  snprintf(status_id, sizeof status_id, "%s-t%d", prefix, w->index);
  for (k = 0; k < UPDATES_PER_THREAD; k++) {
    char *error = NULL;
    snprintf(patch, sizeof patch, "{\"devicesCount\":%d,\"userDisplayName\":\"thread %d\"}",
             w->index * 1000 + k, w->index);
    if (ius_update_user_status(w->client, "c1", status_id, patch, NULL, &error) != IUS_STATUS_OK) {
      fprintf(stderr, "  thread %d update %d: %s\n", w->index, k, error);
      w->failures++;
    }
    ius_string_free(error);
  }
  return NULL;
}

static void test_threads(void) {
  ius_client *client = client_for(config(base_url, ""));
  ius_client *reader = client_for(config(base_url, ",\"fetchAfterNoContent\":true"));
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  int i;
  for (i = 0; i < THREADS; i++) {
    workers[i].client = client;
    workers[i].index = i;
    workers[i].failures = 0;
    pthread_create(&threads[i], NULL, worker_main, &workers[i]);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(workers[i].failures == 0);
  }
  /* Read every status back: a patch of another property, fetched after the 204, shows the
   * last count and name each thread wrote. */
  for (i = 0; i < THREADS; i++) {
    char status_id[64], count[64], name[64];
    char *response = NULL, *error = NULL;
    snprintf(status_id, sizeof status_id, "%s-t%d", prefix, i);
    snprintf(count, sizeof count, "\"devicesCount\":%d", i * 1000 + UPDATES_PER_THREAD - 1);
    snprintf(name, sizeof name, "\"userDisplayName\":\"thread %d\"", i);
    CHECK(ius_update_user_status(reader, "c1", status_id, "{\"status\":\"compliant\"}",
                                 &response, &error) == IUS_STATUS_OK);
    CHECK(has(response, count) && has(response, name));
    ius_string_free(response);
    ius_string_free(error);
  }
  ius_client_free(reader);
  ius_client_free(client);
}

#ifdef _WIN32
/* One string of the DLL's version resource (U.S. English, Unicode block), as UTF-8. */
static void version_text(const void *info, const wchar_t *name, char *out, int size) {
  wchar_t query[96];
  wchar_t *text = NULL;
  UINT len = 0;
  out[0] = '\0';
  wcscpy(query, L"\\StringFileInfo\\040904B0\\");
  wcscat(query, name);
  if (VerQueryValueW(info, query, (void **)&text, &len) && len > 0)
    WideCharToMultiByte(CP_UTF8, 0, text, -1, out, size, NULL, NULL);
}

/* The loaded DLL carries the version resource installers read (GetFileVersionInfo): the
 * crate's version as FileVersion and ProductVersion, in numbers and in text. A program linked
 * to the static library loads no such DLL. */
static void test_version_resource(void) {
  HMODULE dll = GetModuleHandleW(L"intune_user_status.dll");
  if (strstr(prefix, "static") != NULL) {
    CHECK(dll == NULL);
    return;
  }
  CHECK(dll != NULL);
  wchar_t path[MAX_PATH];
  DWORD n = GetModuleFileNameW(dll, path, MAX_PATH);
  CHECK(n > 0 && n < MAX_PATH);
  DWORD handle = 0;
  DWORD size = GetFileVersionInfoSizeW(path, &handle);
  CHECK(size > 0);
  void *info = size > 0 ? malloc(size) : NULL;
  int read = info != NULL && GetFileVersionInfoW(path, 0, size, info);
  CHECK(read);
  if (!read) {
    free(info);
    return;
  }
  VS_FIXEDFILEINFO *fixed = NULL;
  UINT len = 0;
  CHECK(VerQueryValueW(info, L"\\", (void **)&fixed, &len) && len >= sizeof *fixed);
  if (fixed != NULL) {
    char numbers[64];
    snprintf(numbers, sizeof numbers, "%u.%u.%u", (unsigned)HIWORD(fixed->dwFileVersionMS),
             (unsigned)LOWORD(fixed->dwFileVersionMS), (unsigned)HIWORD(fixed->dwFileVersionLS));
    /* "0.1.0" for 0.1.0, and the numbers that begin a pre-release's version. */
    CHECK(strncmp(ius_version(), numbers, strlen(numbers)) == 0);
    CHECK(fixed->dwProductVersionMS == fixed->dwFileVersionMS &&
          fixed->dwProductVersionLS == fixed->dwFileVersionLS);
  }
  char text[64];
  version_text(info, L"FileVersion", text, sizeof text);
  CHECK(strcmp(text, ius_env("IUS_TEST_VERSION")) == 0);
  version_text(info, L"ProductVersion", text, sizeof text);
  CHECK(strcmp(text, ius_version()) == 0);
  version_text(info, L"OriginalFilename", text, sizeof text);
  CHECK(strcmp(text, "intune_user_status.dll") == 0);
  free(info);
}
#endif

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PREFIX\n", argv[0]);
    return 2;
  }
  prefix = argv[1];
  base_url = ius_env("IUS_TEST_BASE_URL");
  base_url_200 = ius_env("IUS_TEST_BASE_URL_200");
  token = ius_env("IUS_TEST_TOKEN");
  test_static_functions();
  test_client_new();
  test_bad_input();
  test_success();
  test_service_errors();
  test_transport_errors();
  test_threads();
#ifdef _WIN32
  test_version_resource();
#endif
  return ius_summary();
}
