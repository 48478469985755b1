/* A service's stop: worker threads update a status in a loop; when the service is told to stop
 * (SIGINT or SIGTERM, or after SECONDS), it sets its stop flag, interrupts the client so the calls
 * in progress return IUS_STATUS_CANCELLED at once, joins the workers, and only then frees the
 * client: a client is freed only when no call is using it.
 *
 * The order matters. The flag is set before the interrupt, so a worker that is not in a call at
 * the interrupt sees the flag before its next one. A call that started just after the interrupt
 * (its worker had read the flag a moment before) is not ended by it: `totalMs` bounds it.
 *
 *   service_stop BASE_URL TOKEN CONFIG_ID STATUS_ID [WORKERS] [SECONDS]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "intune_user_status.h"

#define MAX_WORKERS 16

struct service {
  const ius_client *client;
  const char *config_id;
  const char *status_id;
  atomic_int stopping;
};

/* Set by the signal handler; read by the main thread (no library call from a handler). */
static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int signal_number) {
  (void)signal_number;
  stop_requested = 1;
}

static void *worker(void *argument) {
  struct service *service = (struct service *)argument;
  int count = 0;
  while (!atomic_load(&service->stopping)) {
    char patch[64];
    char *response = NULL, *error = NULL;
    snprintf(patch, sizeof patch, "{\"devicesCount\":%d}", ++count % 100);
    ius_status status = ius_update_user_status(service->client, service->config_id,
                                               service->status_id, patch, &response, &error);
    if (status == IUS_STATUS_CANCELLED) {
      /* Interrupted: whether Graph applied a request in flight is unknown. */
      ius_string_free(error);
      break;
    }
    if (status != IUS_STATUS_OK) fprintf(stderr, "update: %s %s\n", ius_status_name(status), error);
    ius_string_free(response);
    ius_string_free(error);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s BASE_URL TOKEN CONFIG_ID STATUS_ID [WORKERS] [SECONDS]\n", argv[0]);
    return 2;
  }
  int workers = argc > 5 ? atoi(argv[5]) : 4;
  int seconds = argc > 6 ? atoi(argv[6]) : 3;
  if (workers < 1 || workers > MAX_WORKERS) workers = 4;
  char config[1024];
  snprintf(config, sizeof config,
           "{\"baseUrl\":\"%s\",\"accessToken\":\"%s\",\"timeouts\":{\"totalMs\":30000}}", argv[1],
           argv[2]);
  ius_client *client = NULL;
  char *error = NULL;
  ius_status status = ius_client_new(config, &client, &error);
  if (status != IUS_STATUS_OK) {
    fprintf(stderr, "client: %s %s\n", ius_status_name(status), error);
    ius_string_free(error);
    return 1;
  }
  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);

  struct service service = {client, argv[3], argv[4], 0};
  pthread_t threads[MAX_WORKERS];
  int started = 0;
  while (started < workers && pthread_create(&threads[started], NULL, worker, &service) == 0)
    started++;

  for (int waited = 0; waited < seconds && !stop_requested; waited++) sleep(1);

  /* The stop: the flag first, then the interrupt, then the joins, then the free. */
  atomic_store(&service.stopping, 1);
  ius_client_interrupt(client);
  for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
  ius_client_free(client);
  printf("stopped %d workers\n", started);
  return 0;
}
