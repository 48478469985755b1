/* The network settings through the C API: HTTPS with an inspecting CA added by `tls.extraRootsPem`
 * (and refused without it), updates and token requests through an authenticating proxy, and a bad
 * proxy URL whose password never reaches the error JSON. This program checks what C sees; the
 * driver (tests/c_api.rs) then checks what the servers saw (the proxy's CONNECT lines and
 * Proxy-Authorization, the stored statuses, the token request).
 *
 * Usage: test_c_network KIND (shared or static). The environment (set by tests/c_api.rs) names
 * this kind's servers: IUS_NET_<KIND>_HTTPS_URL (an HTTPS emulator whose certificate is signed by
 * the CA in the PEM file IUS_NET_CA_FILE; status c1/u1), IUS_NET_<KIND>_GRAPH_URL (HTTPS as
 * graph.proxied.test, reached only through the proxy, certificate from the same CA,
 * any bearer token; statuses c1/p1 and c1/p2), IUS_NET_<KIND>_LOGIN_URL (the token endpoint of
 * app IUS_NET_APP in tenant IUS_NET_TENANT with secret IUS_NET_SECRET) and IUS_NET_<KIND>_PROXY_URL
 * (a loopback CONNECT proxy, http://127.0.0.1:PORT); and the static token IUS_TEST_TOKEN. */
#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)

static const char *token;
static char kind_upper[16];

/* The value of IUS_NET_<KIND>_<what>. */
static const char *kind_env(const char *what) {
  char name[128];
  snprintf(name, sizeof name, "IUS_NET_%s_%s", kind_upper, what);
  return ius_env(name);
}

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

/* True if the error JSON's message (from "message" on) mentions `word`, ignoring case. */
static int message_mentions(const char *json, const char *word) {
  const char *at = has(json, "\"message\":\"") ? strstr(json, "\"message\":\"") : NULL;
  char *lower;
  size_t i, n;
  int found;
  if (at == NULL) return 0;
  n = strlen(at);
  lower = (char *)malloc(n + 1);
  for (i = 0; i <= n; i++)
    lower[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + ('a' - 'A') : at[i]);
  found = strstr(lower, word) != NULL;
  free(lower);
  return found;
}

/* The file at the path in environment variable `name`, escaped for a JSON string (malloc'd). */
static char *json_escaped_file(const char *name) {
  const char *path = ius_env(name);
  FILE *file = fopen(path, "rb");
  char *out;
  size_t n = 0, cap = 4096;
  int c;
  if (file == NULL) {
    perror(path);
    exit(2);
  }
  out = (char *)malloc(cap);
  while ((c = fgetc(file)) != EOF) {
    if (n + 3 > cap) {
      cap *= 2;
      out = (char *)realloc(out, cap);
    }
    if (c == '\n') {
      out[n++] = '\\';
      out[n++] = 'n';
    } else if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c != '\r') {
      out[n++] = (char)c;
    }
  }
  out[n] = '\0';
  fclose(file);
  return out;
}

static ius_client *must_create(const char *config_json) {
  ius_client *client = NULL;
  char *error = NULL;
  if (ius_client_new(config_json, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new: %s\n", error ? error : "(no error JSON)");
    ius_string_free(error);
    exit(2);
  }
  CHECK(error == NULL);
  return client;
}

/* HTTPS: the server's CA is not a public root, so the update fails with TLS (nothing is sent)
 * until the CA is added with tls.extraRootsPem; then it lands (the driver checks u1 = 4). */
static void test_https(void) {
  const char *url = kind_env("HTTPS_URL");
  char *ca = json_escaped_file("IUS_NET_CA_FILE");
  size_t size = strlen(ca) + 1024;
  char *config_json = (char *)malloc(size);
  ius_client *client;
  char *error;
  ius_status status;

  CHECK(strncmp(url, "https://", 8) == 0);
  /* useEnvProxy off: whatever proxy the environment names must not change these outcomes. */
  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"useEnvProxy\":false,"
           "\"retry\":{\"baseDelayMs\":50}}",
           url, token);
  client = must_create(config_json);
  error = SENTINEL;
  status = ius_test_update(client, "u1", 4, &error);
  if (status != IUS_STATUS_TLS)
    fprintf(stderr, "  without the CA: %s %s\n", ius_status_name(status),
            error && error != SENTINEL ? error : "");
  CHECK(status == IUS_STATUS_TLS);
  CHECK_HAS(error, "\"status\":\"TLS\"", 1);
  if (!message_mentions(error, "certificate"))
    fprintf(stderr, "  expected the message to mention a certificate: %s\n",
            error && error != SENTINEL ? error : "(null)");
  CHECK(message_mentions(error, "certificate"));
  ius_string_free(error);
  ius_client_free(client);

  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"useEnvProxy\":false,"
           "\"tls\":{\"extraRootsPem\":\"%s\"}}",
           url, token, ca);
  client = must_create(config_json);
  ius_test_update_ok(client, "u1", 4);
  ius_client_free(client);

  /* PEM without a certificate: CONFIG naming the field, no client. */
  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"tls\":{\"extraRootsPem\":\"junk\"}}", url,
           token);
  client = (ius_client *)SENTINEL;
  error = SENTINEL;
  CHECK(ius_client_new(config_json, &client, &error) == IUS_STATUS_CONFIG);
  CHECK(client == NULL);
  CHECK_HAS(error, "\"field\":\"tls.extraRootsPem\"", 1);
  ius_string_free(error);

  free(config_json);
  free(ca);
}

/* The proxy URL of this kind with the credentials agent:s3cret (malloc'd). */
static char *proxy_with_credentials(void) {
  const char *url = kind_env("PROXY_URL");
  const char *prefix = "http://";
  size_t size = strlen(url) + 32;
  char *out = (char *)malloc(size);
  if (strncmp(url, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "IUS_NET_%s_PROXY_URL is not http://: %s\n", kind_upper, url);
    exit(2);
  }
  snprintf(out, size, "http://agent:s3cret@%s", url + strlen(prefix));
  return out;
}

/* Graph through the proxy with a static token (p1), then a client secret whose token request and
 * update both go through it (p2). The driver checks the CONNECTs and Proxy-Authorization. */
static void test_proxy(void) {
  /* Named hosts (https://graph.proxied.test:PORT), since loopback never goes through a proxy;
   * the proxy tunnels .test names to loopback, and their certificate is the test CA's. */
  const char *graph = kind_env("GRAPH_URL");
  const char *login = kind_env("LOGIN_URL");
  char *proxy = proxy_with_credentials();
  char *ca = json_escaped_file("IUS_NET_CA_FILE");
  size_t size = strlen(ca) + 2048;
  char *config_json = (char *)malloc(size);
  ius_client *client;

  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"proxy\":\"%s\","
           "\"tls\":{\"extraRootsPem\":\"%s\"},\"retry\":{\"baseDelayMs\":50}}",
           graph, token, proxy, ca);
  client = must_create(config_json);
  ius_test_update_ok(client, "p1", 2);
  ius_client_free(client);

  snprintf(config_json, size,
           "{\"baseUrl\":\"%s\",\"authorityHost\":\"%s\",\"auth\":{\"tenantId\":\"%s\","
           "\"clientId\":\"%s\",\"clientSecret\":\"%s\"},\"proxy\":\"%s\","
           "\"tls\":{\"extraRootsPem\":\"%s\"},\"retry\":{\"baseDelayMs\":50}}",
           graph, login, ius_env("IUS_NET_TENANT"), ius_env("IUS_NET_APP"),
           ius_env("IUS_NET_SECRET"), proxy, ca);
  client = must_create(config_json);
  ius_test_update_ok(client, "p2", 3);
  ius_client_free(client);
  free(config_json);
  free(ca);
  free(proxy);
}

/* A proxy URL ureq cannot use: CONFIG naming "proxy", and its password is never echoed. */
static void test_bad_proxy(void) {
  char config_json[512];
  ius_client *client = (ius_client *)SENTINEL;
  char *error = SENTINEL;
  snprintf(config_json, sizeof config_json,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"proxy\":\"gopher://u:hunter2@x\"}",
           kind_env("GRAPH_URL"), token);
  CHECK(ius_client_new(config_json, &client, &error) == IUS_STATUS_CONFIG);
  CHECK(client == NULL);
  CHECK_HAS(error, "\"status\":\"CONFIG\"", 1);
  CHECK_HAS(error, "\"field\":\"proxy\"", 1);
  CHECK_HAS(error, "hunter2", 0);
  ius_string_free(error);
}

int main(int argc, char **argv) {
  size_t i;
  /* test_support.h's canned server is not needed here. */
  (void)ius_canned_start;
  (void)ius_canned_join;
  if (argc < 2 || strlen(argv[1]) >= sizeof kind_upper) {
    fprintf(stderr, "usage: %s shared|static\n", argv[0]);
    return 2;
  }
  for (i = 0; argv[1][i] != '\0'; i++)
    kind_upper[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 32 : argv[1][i]);
  kind_upper[i] = '\0';
  token = ius_env("IUS_TEST_TOKEN");

  test_bad_proxy();
  test_https();
  test_proxy();
  return ius_summary();
}
