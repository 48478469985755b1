/* The smallest real use of the installed library: make a client (no request) and free it. */
#include <intune_user_status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  ius_client *client = NULL;
  char *error = NULL;
  const char *expected = getenv("IUS_EXPECTED_VERSION");
  ius_status status = ius_client_new("{\"cloud\":\"global\",\"accessToken\":\"t\"}", &client, &error);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "ius_client_new: %s %s\n", ius_status_name(status), error ? error : "");
    ius_string_free(error);
    return 1;
  }
  ius_client_free(client);
  if (expected != NULL && strcmp(expected, ius_version()) != 0) {
    fprintf(stderr, "version %s, expected %s\n", ius_version(), expected);
    return 1;
  }
  printf("intune_user_status %s\n", ius_version());
  return 0;
}
