/* Bulk updates and the rest of the resource through the C API: ius_update_user_statuses (chunking,
 * invalid items named by index, a per-item 429 retried, a per-item 404 final, both API versions in
 * one call, the call's own failures) and ius_get/list/create/delete_user_status(es). This program
 * checks what C sees (statuses, results and error JSON); tests/c_api.rs then checks what the
 * emulator saw (the $batch envelopes, which items went again, what was never sent).
 *
 * Usage: test_c_bulk KIND (shared or static). The emulator is IUS_BULK_<KIND>_URL; it holds c1/b0
 * .. c1/b44, c1/hot (its first PATCH answers 429 with Retry-After 0.2; the first envelope answers
 * 503, so the chunking call's first batch goes twice), c1/v1, c1/v2, and pg/p0 ..
 * pg/p5. IUS_BULK_<KIND>_ELSEWHERE_URL is an emulator whose next links lead to another host (a
 * decoy emulator that must receive nothing). */
#include "intune_user_status.h"
#include "test_support.h"

#define SENTINEL ((char *)(uintptr_t)0x1)

static const char *token;
static char kind_upper[16];

static const char *env_of(const char *what) {
  char name[128];
  snprintf(name, sizeof name, "IUS_BULK_%s_%s", kind_upper, what);
  return ius_env(name);
}

static ius_client *new_client(const char *which) {
  char cfg[512];
  ius_client *client = NULL;
  char *error = NULL;
  snprintf(cfg, sizeof cfg,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"retry\":{\"baseDelayMs\":20}}",
           env_of(which), token);
  if (ius_client_new(cfg, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new(%s): %s\n", cfg, error ? error : "(no error JSON)");
    exit(2);
  }
  return client;
}

/* How many times `needle` occurs in `text`. */
static int occurrences(const char *text, const char *needle) {
  int n = 0;
  const char *at = text;
  while (at != NULL && (at = strstr(at, needle)) != NULL) {
    n++;
    at += strlen(needle);
  }
  return n;
}

/* The `index`th element of a JSON array of flat-ish objects written compactly by the library:
 * copies it into `out` (at most `size` bytes). Elements are found by balancing braces. */
static int element(const char *array, int index, char *out, size_t size) {
  const char *at = array;
  int depth = 0, n = -1;
  const char *start = NULL;
  int in_string = 0;
  for (; at != NULL && *at != '\0'; at++) {
    if (in_string) {
      if (*at == '\\' && at[1] != '\0') at++;
      else if (*at == '"') in_string = 0;
      continue;
    }
    if (*at == '"') in_string = 1;
    else if (*at == '{' && depth++ == 0 && ++n == index) start = at;
    else if (*at == '}' && --depth == 0 && start != NULL) {
      size_t len = (size_t)(at - start + 1);
      if (len >= size) return 0;
      memcpy(out, start, len);
      out[len] = '\0';
      return 1;
    }
  }
  return 0;
}

/* `item` contains `part`; says what it found if not. */
static int has(const char *item, const char *part) {
  if (item != NULL && strstr(item, part) != NULL) return 1;
  fprintf(stderr, "  want %s in %s\n", part, item ? item : "(null)");
  return 0;
}

static void empty_array_gives_empty_results(ius_client *client) {
  char *results = SENTINEL, *error = SENTINEL;
  CHECK(ius_update_user_statuses(client, "[]", &results, &error) == IUS_STATUS_OK);
  CHECK(error == NULL);
  CHECK(results != NULL && strcmp(results, "[]") == 0);
  ius_string_free(results);
}

/* 45 items: the driver checks they went as 20, 20 and 5. */
static void chunking(ius_client *client) {
  char items[45 * 160] = "[";
  char *results = SENTINEL, *error = SENTINEL;
  char one[8192];
  int i;
  for (i = 0; i < 45; i++) {
    char item[160];
    snprintf(item, sizeof item,
             "%s{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b%d\"},"
             "\"patch\":{\"devicesCount\":%d}}",
             i ? "," : "", i, i + 100);
    strcat(items, item);
  }
  strcat(items, "]");
  ius_status status = ius_update_user_statuses(client, items, &results, &error);
  if (status != IUS_STATUS_OK) fprintf(stderr, "  chunking: %s %s\n", ius_status_name(status), error);
  CHECK(status == IUS_STATUS_OK && error == NULL);
  CHECK(occurrences(results, "{\"status\":\"OK\"") + occurrences(results, ",\"status\":\"OK\"") == 45);
  CHECK(element(results, 44, one, sizeof one) && has(one, "\"httpStatus\":204") &&
        has(one, "\"response\":null"));
  CHECK(!element(results, 45, one, sizeof one));
  ius_string_free(results);
  ius_string_free(error);
}

/* Invalid items are named by their index and not sent; the valid ones are. */
static void invalid_items_are_named_and_not_sent(ius_client *client) {
  const char *items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b0\"},"
      "\"patch\":{\"status\":\"compliant\"}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"never-1\"},"
      "\"patch\":{\"devicesCount\":-1}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b1\"},"
      "\"patch\":{\"status\":\"error\"}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"route\":\"nope\",\"userStatusId\":\"never-3\"},"
      "\"patch\":{\"status\":\"error\"}},"
      "7,"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"route\":\"rootCertificate\","
      "\"userStatusId\":\"never-5\",\"apiVersion\":\"v1.0\"},\"patch\":{\"status\":\"error\"}}]";
  char *results = SENTINEL, *error = SENTINEL;
  char one[8192];
  ius_status status = ius_update_user_statuses(client, items, &results, &error);
  CHECK(status == IUS_STATUS_PARTIAL);
  CHECK(has(error, "\"status\":\"PARTIAL\"") && has(error, "4 of 6 items failed"));
  CHECK(element(results, 0, one, sizeof one) && has(one, "\"status\":\"OK\""));
  CHECK(element(results, 1, one, sizeof one) && has(one, "\"status\":\"INVALID_INPUT\"") &&
        has(one, "\"field\":\"items[1].patch.devicesCount\""));
  CHECK(element(results, 2, one, sizeof one) && has(one, "\"status\":\"OK\""));
  CHECK(element(results, 3, one, sizeof one) &&
        has(one, "\"field\":\"items[3].target.route\""));
  CHECK(element(results, 4, one, sizeof one) && has(one, "\"field\":\"items[4]\""));
  CHECK(element(results, 5, one, sizeof one) &&
        has(one, "\"field\":\"items[5].target.route\"") && has(one, "v1.0"));
  ius_string_free(results);
  ius_string_free(error);
}

/* c1/hot answers 429 once (Retry-After 0.2) and goes again alone; c1/missing is a final 404. */
static void per_item_outcomes(ius_client *client) {
  const char *items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"hot\"},"
      "\"patch\":{\"devicesCount\":7}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"missing\"},"
      "\"patch\":{\"devicesCount\":7}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b2\"},"
      "\"patch\":{\"devicesCount\":7}}]";
  char *results = SENTINEL, *error = SENTINEL;
  char one[8192];
  ius_status status = ius_update_user_statuses(client, items, &results, &error);
  CHECK(status == IUS_STATUS_PARTIAL);
  /* A retried item that succeeded carries its attempts too. */
  CHECK(element(results, 0, one, sizeof one) && has(one, "\"status\":\"OK\"") &&
        has(one, "\"attempts\":2"));
  CHECK(element(results, 1, one, sizeof one) && has(one, "\"status\":\"GRAPH\"") &&
        has(one, "\"httpStatus\":404") && has(one, "\"code\":\"ResourceNotFound\"") &&
        has(one, "\"requestId\":\"") && has(one, "\"attempts\":1"));
  CHECK(element(results, 2, one, sizeof one) && has(one, "\"status\":\"OK\"") &&
        has(one, "\"attempts\":1"));
  ius_string_free(results);
  ius_string_free(error);
}

static void both_versions_in_one_call(ius_client *client) {
  const char *items =
      "[{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"v1\",\"apiVersion\":\"v1.0\"},"
      "\"patch\":{\"status\":\"compliant\"}},"
      "{\"target\":{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"v2\"},"
      "\"patch\":{\"status\":\"compliant\"}}]";
  char *results = SENTINEL, *error = SENTINEL;
  CHECK(ius_update_user_statuses(client, items, &results, &error) == IUS_STATUS_OK);
  CHECK(occurrences(results, "\"status\":\"OK\"") == 2);
  ius_string_free(results);
  ius_string_free(error);
}

/* The call's own failures: nothing sent, no results. */
static void call_failures_write_no_results(ius_client *client) {
  static const struct {
    const char *items;
    ius_status want;
    const char *field;
  } cases[] = {
      {NULL, IUS_STATUS_NULL_ARGUMENT, "items_json"},
      {"[", IUS_STATUS_INVALID_JSON, "items_json"},
      {"{\"target\":{}}", IUS_STATUS_INVALID_INPUT, "items_json"},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *results = SENTINEL, *error = SENTINEL;
    char field[64];
    CHECK(ius_update_user_statuses(client, cases[i].items, &results, &error) == cases[i].want);
    CHECK(results == NULL);
    snprintf(field, sizeof field, "\"field\":\"%s\"", cases[i].field);
    CHECK(has(error, field));
    ius_string_free(error);
  }
  {
    char *error = SENTINEL;
    CHECK(ius_update_user_statuses(client, "[]", NULL, &error) == IUS_STATUS_NULL_ARGUMENT);
    CHECK(has(error, "out_results_json"));
    ius_string_free(error);
    CHECK(ius_update_user_statuses(NULL, "[]", NULL, NULL) == IUS_STATUS_NULL_ARGUMENT);
  }
}

static void get_list_create_delete(ius_client *client) {
  char *response = SENTINEL, *error = SENTINEL;
  const char *pg = "{\"deviceConfigurationId\":\"pg\"}";

  CHECK(ius_get_user_status(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"b3\"}",
                            &response, &error) == IUS_STATUS_OK);
  CHECK(error == NULL && has(response, "\"id\":\"b3\""));
  ius_string_free(response);

  response = SENTINEL;
  CHECK(ius_get_user_status(client, "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"none\"}",
                            &response, &error) == IUS_STATUS_GRAPH);
  CHECK(response == NULL && has(error, "\"httpStatus\":404") &&
        has(error, "\"code\":\"ResourceNotFound\""));
  ius_string_free(error);

  /* Six entities, two per page: three pages, every entity once. */
  response = SENTINEL;
  CHECK(ius_list_user_statuses(client, pg, "{\"top\":2}", &response, &error) == IUS_STATUS_OK);
  CHECK(error == NULL && occurrences(response, "\"id\":\"p") == 6);
  CHECK(has(response, "\"id\":\"p0\"") && has(response, "\"id\":\"p5\""));
  ius_string_free(response);

  response = SENTINEL;
  CHECK(ius_list_user_statuses(client, pg, "{\"top\":2,\"maxPages\":2}", &response, &error) ==
        IUS_STATUS_UNEXPECTED_RESPONSE);
  CHECK(response == NULL && has(error, "maxPages"));
  ius_string_free(error);

  /* More entities than maxItems: an error naming the bound, no list. */
  response = SENTINEL;
  CHECK(ius_list_user_statuses(client, pg, "{\"top\":2,\"maxItems\":5}", &response, &error) ==
        IUS_STATUS_UNEXPECTED_RESPONSE);
  CHECK(response == NULL && has(error, "more than 5 entities (maxItems)"));
  ius_string_free(error);
  response = SENTINEL;
  CHECK(ius_list_user_statuses(client, pg, "{\"maxItems\":0}", &response, &error) ==
        IUS_STATUS_INVALID_INPUT);
  CHECK(response == NULL && has(error, "\"field\":\"maxItems\""));
  ius_string_free(error);

  response = SENTINEL;
  CHECK(ius_list_user_statuses(client, pg, "{\"skip\":2}", &response, &error) ==
        IUS_STATUS_INVALID_INPUT);
  CHECK(response == NULL && has(error, "\"field\":\"skip\""));
  ius_string_free(error);

  CHECK(ius_list_user_statuses(client, "{\"deviceConfigurationId\":\"pg\",\"userStatusId\":\"x\"}",
                               NULL, &response, &error) == IUS_STATUS_INVALID_INPUT);
  CHECK(has(error, "\"field\":\"userStatusId\""));
  ius_string_free(error);

  /* A next link to another host: refused, and nothing is sent there (the driver checks). */
  {
    ius_client *elsewhere = new_client("ELSEWHERE_URL");
    response = SENTINEL;
    CHECK(ius_list_user_statuses(elsewhere, pg, NULL, &response, &error) ==
          IUS_STATUS_UNEXPECTED_RESPONSE);
    CHECK(response == NULL && has(error, "was not followed"));
    CHECK(error != NULL && strstr(error, token) == NULL);
    ius_string_free(error);
    ius_client_free(elsewhere);
  }

  response = SENTINEL;
  CHECK(ius_create_user_status(client, pg, "{\"id\":\"made\",\"devicesCount\":1}", &response,
                               &error) == IUS_STATUS_OK);
  CHECK(error == NULL && has(response, "\"id\":\"made\"") && has(response, "\"devicesCount\":1"));
  ius_string_free(response);

  CHECK(ius_create_user_status(client, pg, "{\"devicesCount\":-4}", &response, &error) ==
        IUS_STATUS_INVALID_INPUT);
  CHECK(response == NULL && has(error, "\"field\":\"devicesCount\""));
  ius_string_free(error);

  CHECK(ius_delete_user_status(client, "{\"deviceConfigurationId\":\"pg\",\"userStatusId\":\"made\"}",
                               &error) == IUS_STATUS_OK);
  CHECK(error == NULL);
  CHECK(ius_delete_user_status(client, "{\"deviceConfigurationId\":\"pg\",\"userStatusId\":\"made\"}",
                               &error) == IUS_STATUS_GRAPH);
  CHECK(has(error, "\"httpStatus\":404"));
  ius_string_free(error);

  CHECK(ius_get_user_status(client, "{}", NULL, &error) == IUS_STATUS_NULL_ARGUMENT);
  ius_string_free(error);
  CHECK(ius_delete_user_status(client, NULL, NULL) == IUS_STATUS_NULL_ARGUMENT);
}

int main(int argc, char **argv) {
  size_t i;
  ius_client *client;
  if (argc != 2 || strlen(argv[1]) >= sizeof kind_upper) {
    fprintf(stderr, "usage: %s shared|static\n", argv[0]);
    return 2;
  }
  for (i = 0; argv[1][i] != '\0'; i++)
    kind_upper[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 'a' + 'A'
                                                                  : argv[1][i]);
  token = ius_env("IUS_TEST_TOKEN");
  (void)ius_canned_start;
  (void)ius_canned_join;
  client = new_client("URL");
  empty_array_gives_empty_results(client);
  chunking(client);
  invalid_items_are_named_and_not_sent(client);
  per_item_outcomes(client);
  both_versions_in_one_call(client);
  call_failures_write_no_results(client);
  get_list_create_delete(client);
  ius_client_free(client);
  return ius_summary();
}
