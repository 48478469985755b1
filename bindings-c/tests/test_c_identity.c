/* Managed identity and workload identity through the C API, against the emulator's IMDS, App
 * Service and Azure Arc endpoints and its token endpoint. The C API reads the real environment at
 * ius_client_new, so this program sets it (ius_setenv) before each client, on its one thread. This
 * program checks what C sees; the driver (tests/c_api.rs) then checks what the emulator saw (each
 * identity asked for by its own name, App Service's header, Arc's key, the rotated federated
 * token).
 *
 * Usage: test_c_identity KIND (shared or static). The environment (set by tests/c_api.rs) names
 * this kind's emulator (IUS_IDENTITY_<KIND>_URL) and the folder its Arc endpoint writes key files
 * to (IUS_IDENTITY_<KIND>_ARC_DIR), App Service's header (IUS_IDENTITY_HEADER), the user-assigned
 * identity (IUS_IDENTITY_UAI_CLIENT, IUS_IDENTITY_UAI_OBJECT), the workload app
 * (IUS_IDENTITY_TENANT, IUS_IDENTITY_APP), two federated tokens the emulator minted
 * (IUS_IDENTITY_<KIND>_FEDERATED_1 and _2) and a file to write them to
 * (IUS_IDENTITY_<KIND>_TOKEN_FILE); and the emulators of the scenarios that need their own:
 * IMDS answering 410 three times (_GONE_URL), 500 twice (_ERRORS_URL), tokens of 8 s
 * (_SHORT_URL), Azure Arc naming a key file outside its tokens folder (_OUTSIDE_URL, its folder
 * _OUTSIDE_ARC_DIR, the file's contents IUS_IDENTITY_OUTSIDE_SECRET). The library is a test
 * build (tests/c_build), which reads IUS_TEST_ARC_TOKENS_FOLDER and IUS_TEST_IMDS_GONE_WAIT_MS. */
#include <time.h>

#include "intune_user_status.h"
#include "test_support.h"

static const char *url, *header, *arc_dir, *token_file, *federated[2];
static char kind_upper[16];

static int has(const char *json, const char *needle) {
  return json != NULL && strstr(json, needle) != NULL;
}

#define CHECK_HAS(text, needle, want)                                                       \
  do {                                                                                      \
    int found_ = has((text), (needle));                                                     \
    if (found_ != (want))                                                                   \
      fprintf(stderr, "  expected %s\"%s\" in %s\n", (want) ? "" : "no ", (needle),         \
              (text) ? (text) : "(null)");                                                  \
    CHECK(found_ == (want));                                                                \
  } while (0)

static const char *kind_env(const char *suffix) {
  char name[96];
  snprintf(name, sizeof name, "IUS_IDENTITY_%s_%s", kind_upper, suffix);
  return ius_env(name);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unsets every variable the identity sources read, so each case sets only its own. */
static void clear_identity_env(void) {
  const char *names[] = {"IDENTITY_ENDPOINT",          "IDENTITY_HEADER",
                         "IMDS_ENDPOINT",              "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                         "AZURE_TENANT_ID",            "AZURE_CLIENT_ID",
                         "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
                         "IUS_TEST_ARC_TOKENS_FOLDER", "IUS_TEST_IMDS_GONE_WAIT_MS"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) ius_setenv(names[i], NULL);
}

/* config_json with the emulator as Graph and `auth` as given; 10 ms retry backoff. */
static const char *config(const char *auth) {
  static char buf[2048];
  snprintf(buf, sizeof buf, "{\"baseUrl\":\"%s\",\"auth\":%s,\"retry\":{\"baseDelayMs\":10}}", url,
           auth);
  return buf;
}

static ius_client *must_create(const char *config_json) {
  ius_client *client = NULL;
  char *error = NULL;
  if (ius_client_new(config_json, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new %s: %s\n", config_json, error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

/* One update with a new client of `auth`, which must succeed. */
static void update_with(const char *auth, const char *status_id) {
  ius_client *client = must_create(config(auth));
  ius_test_update_ok(client, status_id, 1);
  ius_client_free(client);
}

/* IDENTITY_ENDPOINT: the emulator's URL and `path`. */
static void set_identity_endpoint(const char *path) {
  char endpoint[512];
  snprintf(endpoint, sizeof endpoint, "%s%s", url, path);
  ius_setenv("IDENTITY_ENDPOINT", endpoint);
}

/* IMDS (at AZURE_POD_IDENTITY_AUTHORITY_HOST), App Service and Azure Arc. */
static void test_managed_identity(void) {
  char auth[1024];
  clear_identity_env();
  ius_setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url);
  update_with("{\"managedIdentity\":{}}", "mi-system");
  snprintf(auth, sizeof auth, "{\"managedIdentity\":{\"objectId\":\"%s\"}}",
           ius_env("IUS_IDENTITY_UAI_OBJECT"));
  update_with(auth, "mi-object");

  clear_identity_env();
  set_identity_endpoint("/msi/token");
  ius_setenv("IDENTITY_HEADER", header);
  snprintf(auth, sizeof auth, "{\"managedIdentity\":{\"clientId\":\"%s\"}}",
           ius_env("IUS_IDENTITY_UAI_CLIENT"));
  update_with(auth, "mi-app");

  clear_identity_env();
  set_identity_endpoint("/arc/metadata/identity/oauth2/token");
  ius_setenv("IMDS_ENDPOINT", url);
  /* The library is a test build (tests/c_build): it takes Arc's tokens folder from here. */
  ius_setenv("IUS_TEST_ARC_TOKENS_FOLDER", arc_dir);
  update_with("{\"managedIdentity\":{}}", "mi-arc");
}

/* No IMDS (a refused port): AUTH at once, not after the client's retries. */
static void test_no_imds(void) {
  char host[64], *error = NULL;
  int port;
  ius_socket fd = ius_listen(&port);
  ius_client *client;
  double started;
  ius_status status;
  ius_close_socket(fd); /* nothing listens there any more */
  snprintf(host, sizeof host, "http://127.0.0.1:%d", port);
  clear_identity_env();
  ius_setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", host);
  /* The default retry policy: a retried failure would take seconds. */
  {
    char json[512];
    snprintf(json, sizeof json, "{\"baseUrl\":\"%s\",\"auth\":{\"managedIdentity\":{}}}", url);
    client = must_create(json);
  }
  started = now_seconds();
  status = ius_test_update(client, "mi-none", 1, &error);
  CHECK(status == IUS_STATUS_AUTH);
  CHECK(now_seconds() - started < 1.0);
  CHECK_HAS(error, "managed identity is unavailable", 1);
  ius_string_free(error);
  ius_client_free(client);
}

/* Configuration errors name the field; secrets are never echoed. */
static void test_config_errors(void) {
  struct {
    const char *auth, *field;
  } cases[] = {
      {"{\"managedIdentity\":{\"clientId\":\"a\",\"objectId\":\"b\"}}",
       "\"field\":\"auth.managedIdentity.objectId\""},
      {"{\"managedIdentity\":{\"tenantId\":\"t\"}}", "\"field\":\"auth.managedIdentity.tenantId\""},
      /* No configuration moves Arc's tokens folder. */
      {"{\"managedIdentity\":{\"arcTokensFolder\":\"/tmp\"}}",
       "\"field\":\"auth.managedIdentity.arcTokensFolder\""},
      {"{\"managedIdentity\":{},\"clientSecret\":\"s3cret-never-echoed\"}",
       "\"field\":\"auth.clientSecret\""},
      /* Azure Arc has no user-assigned identities. */
      {"{\"managedIdentity\":{\"clientId\":\"c\"}}", "\"field\":\"auth.managedIdentity.clientId\""},
      /* Nothing in the environment for workload identity. */
      {"{\"workloadIdentity\":{}}", "\"field\":\"auth.workloadIdentity.tenantId\""},
  };
  size_t i;
  clear_identity_env();
  ius_setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:40342/metadata/identity/oauth2/token");
  ius_setenv("IMDS_ENDPOINT", "http://127.0.0.1:40342");
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ius_client *client = (ius_client *)&cases; /* must become NULL */
    char *error = NULL;
    ius_status status = ius_client_new(config(cases[i].auth), &client, &error);
    CHECK(status == IUS_STATUS_CONFIG);
    CHECK(client == NULL);
    CHECK_HAS(error, cases[i].field, 1);
    CHECK_HAS(error, "s3cret-never-echoed", 0);
    ius_string_free(error);
  }
  /* An insecure endpoint from the environment names the variable. */
  clear_identity_env();
  ius_setenv("IDENTITY_ENDPOINT", "http://identity.example:8081/msi/token");
  ius_setenv("IDENTITY_HEADER", header);
  {
    ius_client *client = NULL;
    char *error = NULL;
    CHECK(ius_client_new(config("{\"managedIdentity\":{}}"), &client, &error) ==
          IUS_STATUS_CONFIG);
    CHECK_HAS(error, "\"field\":\"IDENTITY_ENDPOINT\"", 1);
    CHECK_HAS(error, header, 0);
    ius_string_free(error);
  }
}

static void write_token_file(const char *contents) {
  FILE *file = fopen(token_file, "wb");
  if (file == NULL) {
    perror(token_file);
    exit(2);
  }
  fprintf(file, "%s\n", contents);
  fclose(file);
}

/* POST /_emulator/tokens/expire to the emulator at `base`: Graph refuses every token issued so
 * far. */
static void expire_issued_tokens(const char *base) {
  const char *colon = strrchr(base, ':');
  int port = colon != NULL ? atoi(colon + 1) : 0;
  const char *request =
      "POST /_emulator/tokens/expire HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n";
  char reply[512];
  ius_socket fd = ius_connect_loopback(port);
  int n;
  CHECK(fd != IUS_BAD_SOCKET);
  CHECK(send(fd, request, (int)strlen(request), IUS_NO_SIGPIPE) == (int)strlen(request));
  n = (int)recv(fd, reply, sizeof reply - 1, 0);
  reply[n > 0 ? n : 0] = '\0';
  CHECK(strstr(reply, "HTTP/1.1 204") != NULL);
  ius_close_socket(fd);
}

/* Workload identity from the environment; the file rotated between two token requests. */
static void test_workload_identity(void) {
  ius_client *client;
  clear_identity_env();
  ius_setenv("AZURE_TENANT_ID", ius_env("IUS_IDENTITY_TENANT"));
  ius_setenv("AZURE_CLIENT_ID", ius_env("IUS_IDENTITY_APP"));
  ius_setenv("AZURE_FEDERATED_TOKEN_FILE", token_file);
  ius_setenv("AZURE_AUTHORITY_HOST", url);
  write_token_file(federated[0]);
  client = must_create(config("{\"workloadIdentity\":{}}"));
  ius_test_update_ok(client, "wi-1", 1);
  /* The platform rotates the token; Graph refuses the cached one: the new one is read. */
  write_token_file(federated[1]);
  expire_issued_tokens(url);
  ius_test_update_ok(client, "wi-1", 2);
  ius_client_free(client);

  /* The identity host as the top-level authorityHost (it refines workload identity as it does an
   * app's credentials), none in the environment. */
  ius_setenv("AZURE_AUTHORITY_HOST", NULL);
  {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"baseUrl\":\"%s\",\"authorityHost\":\"%s\",\"auth\":{\"workloadIdentity\":{}}}",
             url, url);
    client = must_create(json);
  }
  ius_test_update_ok(client, "wi-3", 1);
  ius_client_free(client);

  /* A file that is gone: AUTH naming it, nothing sent. */
  remove(token_file);
  client = must_create(config("{\"workloadIdentity\":{}}"));
  {
    char *error = NULL, *message = NULL;
    CHECK(ius_test_update(client, "wi-2", 1, &error) == IUS_STATUS_AUTH);
    /* The message, not the JSON, which escapes a Windows path's backslashes. */
    CHECK(ius_error_json_get(error, "message", &message) == IUS_STATUS_OK);
    CHECK_HAS(message, token_file, 1);
    CHECK_HAS(message, "cannot be read", 1);
    ius_string_free(message);
    ius_string_free(error);
  }
  ius_client_free(client);
}

/* A client of the emulator at `base` with IMDS there too (its 410 waits shortened through the
 * test build's IUS_TEST_IMDS_GONE_WAIT_MS); 10 ms retry backoff. */
static ius_client *imds_client(const char *base) {
  char json[1024];
  clear_identity_env();
  ius_setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", base);
  ius_setenv("IUS_TEST_IMDS_GONE_WAIT_MS", "10");
  snprintf(json, sizeof json,
           "{\"baseUrl\":\"%s\",\"auth\":{\"managedIdentity\":{}},\"retry\":{\"baseDelayMs\":10}}",
           base);
  return must_create(json);
}

/* IMDS answering 410 three times, then 500 twice: each waited out, then the token; a Graph 401
 * after that fetches a new one (the driver counts the token requests). */
static void test_imds_retries_and_401(void) {
  ius_client *client = imds_client(kind_env("GONE_URL"));
  ius_test_update_ok(client, "one", 1);
  ius_client_free(client);

  client = imds_client(kind_env("ERRORS_URL"));
  ius_test_update_ok(client, "one", 1);
  expire_issued_tokens(kind_env("ERRORS_URL"));
  ius_test_update_ok(client, "one", 2);
  ius_client_free(client);
}

struct worker {
  const ius_client *client;
  char id[8];
  int first, failures;
  pthread_t thread;
};

/* Three updates of the worker's status, counting from `first`. */
static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  int n;
  for (n = w->first; n < w->first + 3; n++) {
    char *error = NULL;
    if (ius_test_update(w->client, w->id, n, &error) != IUS_STATUS_OK) {
      fprintf(stderr, "  %s: %s\n", w->id, error ? error : "(no error JSON)");
      w->failures++;
    }
    ius_string_free(error);
  }
  return NULL;
}

/* Eight threads, three updates each, starting at `first`. */
static void eight_threads(const ius_client *client, int first) {
  struct worker workers[8];
  int i;
  for (i = 0; i < 8; i++) {
    workers[i].client = client;
    snprintf(workers[i].id, sizeof workers[i].id, "t%d", i);
    workers[i].first = first;
    workers[i].failures = 0;
    CHECK(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0);
  }
  for (i = 0; i < 8; i++) {
    CHECK(pthread_join(workers[i].thread, NULL) == 0);
    CHECK(workers[i].failures == 0);
  }
}

/* One token for eight threads; past half its life (the emulator's tokens live 8 s), one refresh
 * before it expires (the driver sees two token requests and two tokens). */
static void test_threads_and_refresh(void) {
  ius_client *client = imds_client(kind_env("SHORT_URL"));
  double done;
  eight_threads(client, 1);
  done = now_seconds();
  while (now_seconds() - done < 4.3) {
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  eight_threads(client, 4);
  ius_client_free(client);
}

/* Azure Arc's challenge naming a file outside its tokens folder: AUTH naming the rule, the file
 * neither read nor sent (the driver sees no key on the wire). */
static void test_arc_outside(void) {
  const char *base = kind_env("OUTSIDE_URL");
  char endpoint[512], json[1024], *error = NULL;
  ius_client *client;
  clear_identity_env();
  snprintf(endpoint, sizeof endpoint, "%s/arc/metadata/identity/oauth2/token", base);
  ius_setenv("IDENTITY_ENDPOINT", endpoint);
  ius_setenv("IMDS_ENDPOINT", base);
  ius_setenv("IUS_TEST_ARC_TOKENS_FOLDER", kind_env("OUTSIDE_ARC_DIR"));
  snprintf(json, sizeof json, "{\"baseUrl\":\"%s\",\"auth\":{\"managedIdentity\":{}}}", base);
  client = must_create(json);
  CHECK(ius_test_update(client, "one", 1, &error) == IUS_STATUS_AUTH);
  CHECK_HAS(error, "not a file inside Azure Arc's tokens folder", 1);
  CHECK_HAS(error, ius_env("IUS_IDENTITY_OUTSIDE_SECRET"), 0);
  ius_string_free(error);
  ius_client_free(client);
}

int main(int argc, char **argv) {
  struct ius_log_capture logs;
  (void)ius_canned_start;
  (void)ius_canned_join;
  ius_kind_upper(argc, argv, kind_upper, sizeof kind_upper);
  url = kind_env("URL");
  token_file = kind_env("TOKEN_FILE");
  federated[0] = kind_env("FEDERATED_1");
  federated[1] = kind_env("FEDERATED_2");
  header = ius_env("IUS_IDENTITY_HEADER");
  arc_dir = kind_env("ARC_DIR");

  memset(&logs, 0, sizeof logs);
  pthread_mutex_init(&logs.lock, NULL);
  CHECK(ius_set_log_callback(ius_capture_log, &logs, IUS_LOG_LEVEL_DEBUG) == IUS_STATUS_OK);

  test_config_errors();
  test_managed_identity();
  test_no_imds();
  test_imds_retries_and_401();
  test_threads_and_refresh();
  test_arc_outside();
  test_workload_identity();

  CHECK(ius_set_log_callback(NULL, NULL, IUS_LOG_LEVEL_TRACE) == IUS_STATUS_OK);
  CHECK(logs.bad_level == 0);
  CHECK_HAS(logs.text, "managed identity token request: source=Azure Arc", 1);
  CHECK_HAS(logs.text, "token request:", 1);
  /* Never App Service's header, an Arc key (the emulator's start with arc-key-), a federated
   * token or an access token. */
  CHECK_HAS(logs.text, header, 0);
  CHECK_HAS(logs.text, "arc-key-", 0);
  CHECK_HAS(logs.text, federated[0], 0);
  CHECK_HAS(logs.text, federated[1], 0);
  CHECK_HAS(logs.text, "ius-emulator-at.", 0);
  CHECK_HAS(logs.text, "eyJ", 0);
  free(logs.text);
  pthread_mutex_destroy(&logs.lock);
  clear_identity_env();
  return ius_summary();
}
