/* The request both C benches send: the documentation page's example patch
 * (/deviceManagement/deviceConfigurations/{id}/userStatuses/{id}, "Example" / "Request"), with
 * the fixed ids of examples/bench.rs. One copy, so bench.c and bench_curl.c cannot drift apart. */
#ifndef IUS_BENCH_PATCH_H
#define IUS_BENCH_PATCH_H

#define BENCH_CONFIG_ID "bench-config"
#define BENCH_STATUS_ID "bench-status"
#define BENCH_PATCH                                                                                \
  "{\n"                                                                                            \
  "  \"@odata.type\": \"#microsoft.graph.deviceConfigurationUserStatus\",\n"                       \
  "  \"userDisplayName\": \"User Display Name value\",\n"                                          \
  "  \"devicesCount\": 12,\n"                                                                      \
  "  \"status\": \"notApplicable\",\n"                                                             \
  "  \"lastReportedDateTime\": \"2017-01-01T00:00:17.7769392-08:00\",\n"                           \
  "  \"userPrincipalName\": \"User Principal Name value\"\n"                                       \
  "}"

#include <time.h>

static double bench_seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
