/* bench BASE_URL TOKEN N: N sequential ius_update_user_status calls with fixed ids; prints one
 * JSON line like examples/bench.rs: {"n":..,"updates_per_s":..,"cpu_ms_per_update":..}.
 * Same ids and patch as examples/bench.rs (bench-config/bench-status, {"status":"compliant",
 * "devicesCount":3}); the response object, when the server returns one, is taken and freed as a
 * C caller would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "intune_user_status.h"

static double seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  char config[2048];
  ius_client *client = NULL;
  char *error = NULL;
  long n, i;
  double wall, cpu;

  if (argc != 4 || (n = strtol(argv[3], NULL, 10)) <= 0) {
    fprintf(stderr, "usage: %s BASE_URL TOKEN N\n", argv[0]);
    return 2;
  }
  snprintf(config, sizeof config, "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\"}", argv[1], argv[2]);
  if (ius_client_new(config, &client, &error) != IUS_STATUS_OK) {
    fprintf(stderr, "%s\n", error);
    ius_string_free(error);
    return 1;
  }
  wall = seconds(CLOCK_MONOTONIC);
  cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
  for (i = 0; i < n; i++) {
    char *response = NULL;
    if (ius_update_user_status(client, "bench-config", "bench-status",
                               "{\"status\":\"compliant\",\"devicesCount\":3}", &response,
                               &error) != IUS_STATUS_OK) {
      fprintf(stderr, "update %ld: %s\n", i, error);
      ius_string_free(error);
      ius_client_free(client);
      return 1;
    }
    ius_string_free(response);
  }
  wall = seconds(CLOCK_MONOTONIC) - wall;
  cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
  ius_client_free(client);
  printf("{\"client\":\"c\",\"n\":%ld,\"updates_per_s\":%.1f,\"cpu_ms_per_update\":%.4f}\n", n, (double)n / wall,
         cpu * 1000.0 / (double)n);
  return 0;
}
