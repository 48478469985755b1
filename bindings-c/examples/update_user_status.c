/* The C twin of examples/update_user_status.rs.
 *
 *   update_user_status BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]
 *
 * Prints the updated object, or that Graph answered 204; on failure prints the error JSON and
 * exits 1. ROUTE is written as the documentation page writes it (e.g.
 * identityCertificate/rootCertificate). */
#include <stdio.h>
#include <string.h>

#include "intune_user_status.h"

/* Appends `text` to `out` as a JSON string (ids may hold quotes or backslashes). */
static void json_string(char *out, size_t size, const char *text) {
  size_t n = strlen(out);
  if (n + 1 < size) out[n++] = '"';
  for (; *text != '\0' && n + 8 < size; text++) {
    unsigned char c = (unsigned char)*text;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  if (n + 1 < size) out[n++] = '"';
  out[n] = '\0';
}

int main(int argc, char **argv) {
  char config[4096] = "{\"baseUrl\":", target[4096] = "{\"deviceConfigurationId\":";
  ius_client *client = NULL;
  char *response = NULL, *error = NULL;
  ius_status status;

  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: %s BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]\n", argv[0]);
    return 2;
  }
  json_string(config, sizeof config, argv[1]);
  strncat(config, ",\"accessToken\":", sizeof config - strlen(config) - 1);
  json_string(config, sizeof config, argv[2]);
  strncat(config, "}", sizeof config - strlen(config) - 1);
  status = ius_client_new(config, &client, &error);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "%s\n", error != NULL ? error : ius_status_name(status));
    ius_string_free(error);
    return 1;
  }

  json_string(target, sizeof target, argv[3]);
  strncat(target, ",\"userStatusId\":", sizeof target - strlen(target) - 1);
  json_string(target, sizeof target, argv[4]);
  if (argc == 7) {
    strncat(target, ",\"route\":", sizeof target - strlen(target) - 1);
    json_string(target, sizeof target, argv[6]);
  }
  strncat(target, "}", sizeof target - strlen(target) - 1);

  status = ius_update_user_status_at(client, target, argv[5], &response, &error);
  ius_client_free(client);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "%s\n", error != NULL ? error : ius_status_name(status));
    ius_string_free(error);
    return 1;
  }
  if (response != NULL) {
    printf("%s\n", response);
  } else {
    printf("updated (Graph answered 204 No Content)\n");
  }
  ius_string_free(response);
  return 0;
}
