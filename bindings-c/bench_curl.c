/* bench_curl BASE_URL TOKEN N: the libcurl twin of bench.c, the yardstick for the C path. One
 * easy handle reused for N sequential PATCHes of the same URL, headers and body (bench_patch.h);
 * each response is buffered whole, not parsed. Prints one JSON line like bench.c. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_patch.h"

struct buffer {
  char *data;
  size_t len, cap;
};

static size_t on_body(char *chunk, size_t size, size_t count, void *user) {
  struct buffer *buf = user;
  size_t more = size * count;
  if (buf->len + more > buf->cap) {
    size_t cap = buf->cap ? buf->cap * 2 : 1024;
    char *grown;
    while (cap < buf->len + more) cap *= 2;
    if (!(grown = realloc(buf->data, cap))) return 0;
    buf->data = grown;
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, chunk, more);
  buf->len += more;
  return more;
}

int main(int argc, char **argv) {
  char url[2048], auth[2048];
  struct curl_slist *headers = NULL;
  struct buffer body = {NULL, 0, 0};
  CURL *easy;
  long n, i, code = 0;
  double wall, cpu;

  if (argc != 4 || (n = strtol(argv[3], NULL, 10)) <= 0) {
    fprintf(stderr, "usage: %s BASE_URL TOKEN N\n", argv[0]);
    return 2;
  }
  snprintf(url, sizeof url, "%s/beta/deviceManagement/deviceConfigurations/" BENCH_CONFIG_ID "/userStatuses/" BENCH_STATUS_ID,
           argv[1]);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[2]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  easy = curl_easy_init();
  headers = curl_slist_append(headers, auth);
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: application/json");
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PATCH");
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, BENCH_PATCH);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(BENCH_PATCH));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  wall = bench_seconds(CLOCK_MONOTONIC);
  cpu = bench_seconds(CLOCK_PROCESS_CPUTIME_ID);
  for (i = 0; i < n; i++) {
    CURLcode rc;
    body.len = 0;
    if ((rc = curl_easy_perform(easy)) != CURLE_OK) {
      fprintf(stderr, "update %ld: %s\n", i, curl_easy_strerror(rc));
      return 1;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 && code != 204) { /* 204: examples/bench_c.sh with IUS_BENCH_STATUS=204 */
      fprintf(stderr, "update %ld: HTTP %ld\n", i, code);
      return 1;
    }
  }
  wall = bench_seconds(CLOCK_MONOTONIC) - wall;
  cpu = bench_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);
  curl_global_cleanup();
  free(body.data);
  printf("{\"client\":\"libcurl\",\"n\":%ld,\"updates_per_s\":%.1f,\"cpu_ms_per_update\":%.4f}\n", n,
         (double)n / wall, cpu * 1000.0 / (double)n);
  return 0;
}
