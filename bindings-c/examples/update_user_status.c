/* The C twin of examples/update_user_status.rs.
 *
 *   update_user_status BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]
 *   update_user_status --auth managed-identity|workload-identity BASE_URL CONFIG_ID STATUS_ID
 *                      PATCH_JSON [ROUTE]
 *
 * With --auth, no token is given: managed identity uses the machine's (an Azure VM's, App
 * Service's or Azure Arc's, found from the environment at ius_client_new), workload identity
 * exchanges the platform's federated token (AZURE_TENANT_ID, AZURE_CLIENT_ID,
 * AZURE_FEDERATED_TOKEN_FILE). Prints the updated object, or that Graph answered 204; on failure
 * prints the error JSON and exits 1. ROUTE is written as the documentation page writes it (e.g.
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
  /* The `auth` of config_json with --auth, else the token's position in argv. */
  const char *auth = NULL, *token = NULL;
  char **rest; /* BASE_URL, then (after the token, if any) CONFIG_ID STATUS_ID PATCH_JSON [ROUTE] */
  int count;

  if (argc > 2 && strcmp(argv[1], "--auth") == 0) {
    if (strcmp(argv[2], "managed-identity") == 0) {
      auth = "{\"managedIdentity\":{}}";
    } else if (strcmp(argv[2], "workload-identity") == 0) {
      auth = "{\"workloadIdentity\":{}}";
    } else {
      fprintf(stderr, "--auth %s: expected managed-identity or workload-identity\n", argv[2]);
      return 2;
    }
    rest = argv + 3;
    count = argc - 3;
  } else {
    rest = argv + 1;
    count = argc - 1;
    if (count > 1) {
      token = rest[1];
      /* Drop the token: rest is then laid out as in the --auth form. */
      rest[1] = rest[0];
      rest += 1;
      count -= 1;
    }
  }
  if (count != 4 && count != 5) {
    fprintf(stderr,
            "usage: %s BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]\n"
            "       %s --auth managed-identity|workload-identity BASE_URL CONFIG_ID STATUS_ID "
            "PATCH_JSON [ROUTE]\n",
            argv[0], argv[0]);
    return 2;
  }
  json_string(config, sizeof config, rest[0]);
  if (auth != NULL) {
    strncat(config, ",\"auth\":", sizeof config - strlen(config) - 1);
    strncat(config, auth, sizeof config - strlen(config) - 1);
  } else {
    strncat(config, ",\"accessToken\":", sizeof config - strlen(config) - 1);
    json_string(config, sizeof config, token);
  }
  strncat(config, "}", sizeof config - strlen(config) - 1);
  status = ius_client_new(config, &client, &error);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "%s\n", error != NULL ? error : ius_status_name(status));
    ius_string_free(error);
    return 1;
  }

  json_string(target, sizeof target, rest[1]);
  strncat(target, ",\"userStatusId\":", sizeof target - strlen(target) - 1);
  json_string(target, sizeof target, rest[2]);
  if (count == 5) {
    strncat(target, ",\"route\":", sizeof target - strlen(target) - 1);
    json_string(target, sizeof target, rest[4]);
  }
  strncat(target, "}", sizeof target - strlen(target) - 1);

  status = ius_update_user_status_at(client, target, rest[3], &response, &error);
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
