/* Shared helpers for the C and C++ tests: pass/fail counters and a canned one-shot HTTP server.
 * The emulator (started by tests/c_api.rs) covers Graph; the canned server covers answers the
 * emulator never gives (429, a 200 that is not the entity, silence, non-TLS on an https URL). */
#ifndef IUS_TEST_SUPPORT_H
#define IUS_TEST_SUPPORT_H

/* Sockets: Winsock on Windows (mingw-w64), BSD sockets elsewhere; threads: POSIX threads
 * (winpthreads on mingw-w64). */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
typedef SOCKET ius_socket;
#define IUS_BAD_SOCKET INVALID_SOCKET
#define IUS_SHUT_BOTH SD_BOTH
#define IUS_NO_SIGPIPE 0 /* Windows raises no SIGPIPE */
#define ius_close_socket closesocket
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
typedef int ius_socket;
#define IUS_BAD_SOCKET (-1)
#define IUS_SHUT_BOTH SHUT_RDWR
#define IUS_NO_SIGPIPE MSG_NOSIGNAL
#define ius_close_socket close
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* argv[1], the build kind (shared or static), in upper case into `out` (for environment variable
 * names); exits 2 when it is missing or too long. */
static inline void ius_kind_upper(int argc, char **argv, char *out, size_t size) {
  size_t i;
  if (argc < 2 || strlen(argv[1]) >= size) {
    fprintf(stderr, "usage: %s shared|static\n", argv[0]);
    exit(2);
  }
  for (i = 0; argv[1][i] != '\0'; i++)
    out[i] = (char)(argv[1][i] >= 'a' && argv[1][i] <= 'z' ? argv[1][i] - 'a' + 'A' : argv[1][i]);
  out[i] = '\0';
}

/* Every message a log callback received, one per line, with their count and how many came with
 * a level outside ERROR..DEBUG. Zero it and initialise `lock` before use; free `text` after. */
struct ius_log_capture {
  pthread_mutex_t lock;
  char *text;
  size_t len, cap;
  int count, bad_level;
};

/* An ius_log_callback that appends to the struct ius_log_capture in `user_data`. */
static inline void ius_capture_log(void *user_data, ius_log_level level, const char *message) {
  struct ius_log_capture *c = (struct ius_log_capture *)user_data;
  size_t n = strlen(message);
  pthread_mutex_lock(&c->lock);
  if (c->len + n + 2 > c->cap) {
    c->cap = (c->len + n + 2) * 2;
    c->text = (char *)realloc(c->text, c->cap);
  }
  memcpy(c->text + c->len, message, n);
  c->len += n;
  c->text[c->len++] = '\n';
  c->text[c->len] = '\0';
  c->count++;
  if (level < IUS_LOG_LEVEL_ERROR || level > IUS_LOG_LEVEL_DEBUG) c->bad_level++;
  pthread_mutex_unlock(&c->lock);
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

/* Sets a variable of this process's environment (`value` NULL: removes it) where the library
 * reads it: on Windows the process's own environment (SetEnvironmentVariable), which the Rust
 * standard library reads and the C runtime's setenv-less copy does not reach. */
static inline void ius_setenv(const char *name, const char *value) {
#ifdef _WIN32
  if (!SetEnvironmentVariableA(name, value) && value != NULL) {
#else
  if ((value != NULL ? setenv(name, value, 1) : unsetenv(name)) != 0) {
#endif
    fprintf(stderr, "cannot set %s\n", name);
    exit(2);
  }
}

/* Windows: Winsock is started before a socket is made (counted: one WSAStartup per socket made
 * here, never undone; tests only). Elsewhere nothing. */
static inline void ius_sockets_start(void) {
#ifdef _WIN32
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    fprintf(stderr, "WSAStartup failed\n");
    exit(2);
  }
#endif
}

/* A socket connected to 127.0.0.1:`port`, or IUS_BAD_SOCKET. */
static inline ius_socket ius_connect_loopback(int port) {
  struct sockaddr_in addr;
  ius_socket fd;
  ius_sockets_start();
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd != IUS_BAD_SOCKET && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    ius_close_socket(fd);
    return IUS_BAD_SOCKET;
  }
  return fd;
}

/* A listening socket on 127.0.0.1 with a free port. */
static inline ius_socket ius_listen(int *port) {
  ius_sockets_start();
  ius_socket fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd == IUS_BAD_SOCKET || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    perror("canned server");
    exit(2);
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

/* Milliseconds on a monotonic clock. */
static inline long ius_test_now_ms(void) {
#ifdef _WIN32
  return (long)GetTickCount64();
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
#endif
}

static inline void ius_test_sleep_ms(long ms) {
#ifdef _WIN32
  Sleep((DWORD)ms);
#else
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
#endif
}

/* The stats of the emulator at `base_url` (http://127.0.0.1:PORT), GET /_emulator/stats over a
 * raw socket: writes the value of each of `count` keys into `values` (-1 when missing). */
static inline void ius_test_stats(const char *base_url, const char *const *keys, long *values,
                                  int count) {
  int port = atoi(strrchr(base_url, ':') + 1);
  ius_socket fd;
  struct sockaddr_in addr;
  char response[4096];
  size_t got = 0;
  const char *request =
      "GET /_emulator/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < count; i++) values[i] = -1;
#ifdef _WIN32
  WSADATA wsa; /* as in ius_listen: never undone (tests only) */
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return;
#endif
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd == IUS_BAD_SOCKET || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      send(fd, request, (int)strlen(request), IUS_NO_SIGPIPE) < 0) {
    if (fd != IUS_BAD_SOCKET) ius_close_socket(fd);
    return;
  }
  for (;;) {
    int n = (int)recv(fd, response + got, (int)(sizeof response - 1 - got), 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  ius_close_socket(fd);
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
  ius_socket fd;
  const char *response;
  pthread_t thread;
};

/* Accepts one connection, reads what the client sends first, answers `response`, closes. */
static inline void *ius_canned_main(void *arg) {
  struct ius_canned *canned = (struct ius_canned *)arg;
  char buf[8192];
  ius_socket conn = accept(canned->fd, NULL, NULL);
  if (conn != IUS_BAD_SOCKET) {
    /* One read is enough: the request (or TLS ClientHello) is small and sent at once. */
    int n = (int)recv(conn, buf, sizeof buf, 0);
    (void)n;
    int sent = (int)send(conn, canned->response, (int)strlen(canned->response), IUS_NO_SIGPIPE);
    (void)sent;
    shutdown(conn, IUS_SHUT_BOTH);
    ius_close_socket(conn);
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
  ius_close_socket(canned->fd);
}

#endif /* IUS_TEST_SUPPORT_H */
