/* bench BASE_URL TOKEN N: N sequential ius_update_user_status calls with fixed ids; prints one
 * JSON line like examples/bench.rs: {"client":"c","n":..,"updates_per_s":..,"cpu_ms_per_update":..}.
 * Sends the documentation page's example patch (bench_patch.h), parsed from JSON on every call as
 * a C caller's would be; the response object, when the server returns one, is taken and freed as
 * a C caller would. bench_curl.c is the same loop over a bare libcurl easy handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_patch.h"
#include "intune_user_status.h"

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
  wall = bench_seconds(CLOCK_MONOTONIC);
  cpu = bench_seconds(CLOCK_PROCESS_CPUTIME_ID);
  for (i = 0; i < n; i++) {
    char *response = NULL;
    if (ius_update_user_status(client, BENCH_CONFIG_ID, BENCH_STATUS_ID, BENCH_PATCH, &response,
                               &error) != IUS_STATUS_OK) {
      fprintf(stderr, "update %ld: %s\n", i, error);
      ius_string_free(error);
      ius_client_free(client);
      return 1;
    }
    ius_string_free(response);
  }
  wall = bench_seconds(CLOCK_MONOTONIC) - wall;
  cpu = bench_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
  ius_client_free(client);
  printf("{\"client\":\"c\",\"n\":%ld,\"updates_per_s\":%.1f,\"cpu_ms_per_update\":%.4f}\n", n, (double)n / wall,
         cpu * 1000.0 / (double)n);
  return 0;
}
