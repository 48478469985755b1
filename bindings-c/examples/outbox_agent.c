/* An agent loop with the durable outbox: each cycle enqueue the computed status, flush every
 * FLUSH_EVERY cycles. A report enqueued while Graph is unreachable waits in the file (it survives
 * a restart or kill -9) and goes out, merged with later ones, at the next flush that reaches it.
 *
 * Tokens come from the agent's own token source through a callback, as from an identity stack.
 * The order of the frees matters: the callback and its user_data stay in use until the client
 * and every outbox opened with it are freed, and are never called after the last of those frees.
 *
 *   outbox_agent BASE_URL TOKEN OUTBOX_PATH CONFIG_ID STATUS_ID [CYCLES] [SECONDS_BETWEEN]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intune_user_status.h"

#define FLUSH_EVERY 3

/* The agent's token source: here a fixed token; a real agent asks its identity stack. */
struct token_source {
  char *token;
};

static int32_t give_token(void *user_data, char *buffer, size_t len, int64_t *expires_in) {
  const struct token_source *source = (const struct token_source *)user_data;
  size_t n = strlen(source->token);
  if (n + 1 > len) return (int32_t)(n + 1); /* asks for a larger buffer */
  memcpy(buffer, source->token, n + 1);
  *expires_in = 3600;
  return 0;
}

static void report_error(const char *what, ius_status status, char *error) {
  fprintf(stderr, "%s: %s %s\n", what, ius_status_name(status), error ? error : "");
  ius_string_free(error);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s BASE_URL TOKEN OUTBOX_PATH CONFIG_ID STATUS_ID [CYCLES] [SECONDS]\n",
            argv[0]);
    return 2;
  }
  int cycles = argc > 6 ? atoi(argv[6]) : 6;
  int pause = argc > 7 ? atoi(argv[7]) : 10;
  char config[1024], target[512], patch[128];
  snprintf(config, sizeof config, "{\"baseUrl\":\"%s\"}", argv[1]);
  snprintf(target, sizeof target, "{\"deviceConfigurationId\":\"%s\",\"userStatusId\":\"%s\"}",
           argv[4], argv[5]);

  struct token_source *source = malloc(sizeof *source);
  if (source == NULL) return 1;
  source->token = argv[2];
  ius_client *client = NULL;
  ius_outbox *outbox = NULL;
  char *error = NULL;
  ius_status status = ius_client_new_with_token_callback(config, give_token, source, &client, &error);
  if (status != IUS_STATUS_OK) {
    report_error("client", status, error);
    free(source);
    return 1;
  }
  status = ius_outbox_open(client, argv[3], "{\"maxPending\":1000}", &outbox, &error);
  /* The outbox keeps its own copy of the client, and with it the token callback: source must
   * stay valid until the outbox is freed too. */
  ius_client_free(client);
  if (status != IUS_STATUS_OK) {
    report_error("outbox", status, error); /* e.g. STORAGE: the path and the reason */
    free(source);                          /* the client was the last user of the callback */
    return 1;
  }
  for (int cycle = 1; cycle <= cycles; cycle++) {
    /* The agent's own computation; here the device count grows to 3, then holds. */
    snprintf(patch, sizeof patch, "{\"status\":\"compliant\",\"devicesCount\":%d}",
             cycle < 3 ? cycle : 3);
    status = ius_outbox_enqueue(outbox, target, patch, &error);
    if (status != IUS_STATUS_OK) report_error("enqueue", status, error); /* nothing was stored */
    if (cycle % FLUSH_EVERY == 0) {
      char *report = NULL;
      status = ius_outbox_flush(outbox, &report, &error);
      if (status == IUS_STATUS_OK)
        /* sent, applied, retryLater, failed, pending, ...; "stoppedBy":"auth" means the
         * credentials were refused: alert an operator (docs/outbox.md, "Why a flush stopped") */
        printf("flush: %s\n", report);
      else
        report_error("flush did not run", status, error); /* reports stay for the next one */
      ius_string_free(report);
    }
    if (cycle < cycles) sleep((unsigned)pause);
  }
  char *failed = NULL;
  if (ius_outbox_take_failed(outbox, &failed, &error) == IUS_STATUS_OK)
    printf("refused for good: %s\n", failed);
  ius_string_free(failed);
  ius_outbox_free(outbox); /* the last user of the callback: it is never called after this */
  free(source);
  return 0;
}
