#include <stdio.h>
#include "intune_user_status.h"

int main(int argc, char **argv) {
  const char *config = argc > 1 ? argv[1]
      : "{\"baseUrl\":\"http://127.0.0.1:8080\",\"accessToken\":\"emulator-token\"}";
  ius_client *client = NULL;
  char *response = NULL, *error = NULL;

  if (ius_client_new(config, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "%s\n", error);
    ius_string_free(error);
    return 1;
  }
  ius_status status = ius_update_user_status(client, "config-id", "status-id",
      "{\"status\":\"compliant\",\"devicesCount\":3}", &response, &error);
  if (status == IUS_STATUS_OK) {
    printf("updated: %s\n", response != NULL ? response : "(204 No Content)");
  } else {
    fprintf(stderr, "%s: %s\n", ius_status_name(status), error);
  }
  ius_string_free(response);
  ius_string_free(error);
  ius_client_free(client);
  return status == IUS_STATUS_OK ? 0 : 1;
}
