/* Shared helpers for the C and C++ tests: pass/fail counters and a canned one-shot HTTP server.
 * The emulator (started by tests/c_api.rs) covers Graph; the canned server covers answers the
 * emulator never gives (429, a 200 that is not the entity, silence, non-TLS on an https URL). */
#ifndef IUS_TEST_SUPPORT_H
#define IUS_TEST_SUPPORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "intune_user_status.h"

static int ius_passed, ius_failed;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) {                                                                      \
      ius_passed++;                                                                  \
    } else {                                                                         \
      ius_failed++;                                                                  \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
    }                                                                                \
  } while (0)

/* Prints the summary and returns the exit code. */
/* Sets devicesCount of user status `status_id` under configuration c1. `static inline` so a
 * program that does not use it gets no unused-function warning. */
static inline ius_status ius_test_update(const ius_client *client, const char *status_id,
                                         int count, char **error) {
  char patch[64];
  snprintf(patch, sizeof patch, "{\"devicesCount\":%d}", count);
  return ius_update_user_status(client, "c1", status_id, patch, NULL, error);
}

/* One update that must succeed. */
static inline void ius_test_update_ok(const ius_client *client, const char *status_id,
                                      int count) {
  char *error = NULL;
  ius_status status = ius_test_update(client, status_id, count, &error);
  if (status != IUS_STATUS_OK)
    fprintf(stderr, "  update %s: %s %s\n", status_id, ius_status_name(status),
            error ? error : "");
  CHECK(status == IUS_STATUS_OK && error == NULL);
  ius_string_free(error);
}

static int ius_summary(void) {
  printf("%d passed, %d failed\n", ius_passed, ius_failed);
  return ius_failed == 0 && ius_passed > 0 ? 0 : 1;
}

static const char *ius_env(const char *name) {
  const char *value = getenv(name);
  if (value == NULL || value[0] == '\0') {
    fprintf(stderr, "environment variable %s is not set (run through cargo test --test c_api)\n",
            name);
    exit(2);
  }
  return value;
}

/* A listening socket on 127.0.0.1 with a free port. */
static inline int ius_listen(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    perror("canned server");
    exit(2);
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

/* Milliseconds on a monotonic clock. */
static inline long ius_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void ius_test_sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* The stats of the emulator at `base_url` (http://127.0.0.1:PORT), GET /_emulator/stats over a
 * raw socket: writes the value of each of `count` keys into `values` (-1 when missing). */
static inline void ius_test_stats(const char *base_url, const char *const *keys, long *values,
                                  int count) {
  int port = atoi(strrchr(base_url, ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  char response[4096];
  size_t got = 0;
  const char *request =
      "GET /_emulator/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < count; i++) values[i] = -1;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
    if (fd >= 0) close(fd);
    return;
  }
  for (;;) {
    ssize_t n = recv(fd, response + got, sizeof response - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  response[got] = '\0';
  for (int i = 0; i < count; i++) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", keys[i]);
    const char *at = strstr(response, needle);
    if (at != NULL) values[i] = atol(at + strlen(needle));
  }
}

/* One stat of the emulator at `base_url`, -1 when it could not be read. */
static inline long ius_test_stat(const char *base_url, const char *key) {
  long value;
  ius_test_stats(base_url, &key, &value, 1);
  return value;
}

struct ius_canned {
  int fd;
  const char *response;
  pthread_t thread;
};

/* Accepts one connection, reads what the client sends first, answers `response`, closes. */
static inline void *ius_canned_main(void *arg) {
  struct ius_canned *canned = (struct ius_canned *)arg;
  char buf[8192];
  int conn = accept(canned->fd, NULL, NULL);
  if (conn >= 0) {
    /* One read is enough: the request (or TLS ClientHello) is small and sent at once. */
    ssize_t n = recv(conn, buf, sizeof buf, 0);
    (void)n;
    ssize_t sent = send(conn, canned->response, strlen(canned->response), MSG_NOSIGNAL);
    (void)sent;
    shutdown(conn, SHUT_RDWR);
    close(conn);
  }
  return NULL;
}

/* Starts a one-shot server answering `response`; returns its port. */
static inline int ius_canned_start(struct ius_canned *canned, const char *response) {
  int port = 0;
  canned->fd = ius_listen(&port);
  canned->response = response;
  pthread_create(&canned->thread, NULL, ius_canned_main, canned);
  return port;
}

static inline void ius_canned_join(struct ius_canned *canned) {
  pthread_join(canned->thread, NULL);
  close(canned->fd);
}

#endif /* IUS_TEST_SUPPORT_H */
