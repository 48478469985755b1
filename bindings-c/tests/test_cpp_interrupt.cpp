// ius::Client::interrupt() and ius::Outbox::interrupt() through the C++ wrapper: a call (and a
// flush) blocked on a stalled response returns IUS_STATUS_CANCELLED (the flush: its report, with
// `stopped` set) within half a second (5 s under valgrind), a call started afterwards
// succeeds, and a moved-from Client's or Outbox's interrupt does nothing. A flush with no token
// gives its report too, `stopped` IUS_STATUS_AUTH, as ius_outbox_flush does.
//
// Usage: test_cpp_interrupt KIND (shared or static). The emulator is IUS_INTERRUPT_<KIND>_URL:
// the first PATCH of c1/cppstall and of c1/cppostall is never answered; the outbox's file goes
// under IUS_OUTBOX_DIR.
#include "intune_user_status.hpp"

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "test_support.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  std::string kind = argv[1];
  for (char &c : kind) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  const std::string url = ius_env(("IUS_INTERRUPT_" + kind + "_URL").c_str());
  const char *variant = std::getenv("IUS_TEST_VARIANT");
  const long bound_ms = variant != nullptr && std::string(variant) == "valgrind" ? 5000 : 500;

  auto created = ius::Client::create("{\"baseUrl\":\"" + url + "\",\"accessToken\":\"" +
                                     ius_env("IUS_TEST_TOKEN") +
                                     "\",\"timeouts\":{\"requestMs\":20000},"
                                     "\"retry\":{\"baseDelayMs\":10}}");
  CHECK(created.ok());
  if (!created) return ius_summary();
  ius::Client client = std::move(created).value();

  long requests = ius_test_stat(url.c_str(), "requests");
  std::atomic<bool> done{false};
  std::optional<ius::Error> failure;
  std::thread worker([&] {
    auto updated = client.update("c1", "cppstall", "{\"devicesCount\":1}");
    if (!updated) failure = updated.error();
    done = true;
  });
  long give_up = ius_test_now_ms() + 20000;
  while (ius_test_stat(url.c_str(), "requests") < requests + 1 && ius_test_now_ms() < give_up)
    ius_test_sleep_ms(5);
  ius_test_sleep_ms(100);
  long interrupted = ius_test_now_ms();
  client.interrupt();
  while (!done && ius_test_now_ms() < interrupted + 20000) ius_test_sleep_ms(1);
  long took = ius_test_now_ms() - interrupted;
  CHECK(done.load());
  if (!done) return ius_summary();  // the worker would outlive the client
  worker.join();
  CHECK(took <= bound_ms);
  CHECK(failure && failure->status == IUS_STATUS_CANCELLED);
  CHECK(failure && std::string(failure->status_name()) == "CANCELLED");
  CHECK(failure && failure->attempts == 1);

  // A call started afterwards is not affected.
  auto later = client.update("c1", "cppstall", "{\"devicesCount\":2}");
  CHECK(later.ok());

  // ius::Outbox::interrupt(): a flush stalled on a response returns its report with
  // `stopped` set; the next flush after their backoff (10 ms, jittered) delivers the abandoned
  // reports (Graph may still apply an abandoned request: sent at once, a newer value could lose).
  const std::string path = std::string(ius_env("IUS_OUTBOX_DIR")) + "/interrupt-cpp-" + argv[1];
  auto opened = ius::Outbox::open(client, path);
  CHECK(opened.ok());
  if (!opened) return ius_summary();
  ius::Outbox outbox = std::move(opened).value();
  for (const char *id : {"cppob", "cppostall"}) {
    CHECK(outbox
              .enqueue(std::string("{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"") + id +
                           "\"}",
                       "{\"devicesCount\":1}")
              .ok());
  }
  requests = ius_test_stat(url.c_str(), "requests");
  std::atomic<bool> flushed{false};
  std::optional<ius::Result<ius::Outbox::FlushReport>> report;
  std::thread flusher([&] {
    report.emplace(outbox.flush());
    flushed = true;
  });
  // The envelope and its two items.
  give_up = ius_test_now_ms() + 20000;
  while (ius_test_stat(url.c_str(), "requests") < requests + 3 && ius_test_now_ms() < give_up)
    ius_test_sleep_ms(5);
  ius_test_sleep_ms(100);
  interrupted = ius_test_now_ms();
  outbox.interrupt();
  while (!flushed && ius_test_now_ms() < interrupted + 20000) ius_test_sleep_ms(1);
  took = ius_test_now_ms() - interrupted;
  CHECK(flushed.load());
  if (!flushed) return ius_summary();  // the flusher would outlive the outbox
  flusher.join();
  CHECK(took <= bound_ms);
  CHECK(report && report->ok());
  if (report && report->ok()) {
    const ius::Outbox::FlushReport &got = report->value();
    CHECK(got.stopped && got.stopped->status == IUS_STATUS_CANCELLED);
    CHECK(got.json.find("\"interrupted\":2,\"pending\":2,") != std::string::npos);
  }
  ius_test_sleep_ms(20);
  auto again = outbox.flush();
  CHECK(again.ok() && !again.value().stopped);
  CHECK(again.ok() && again.value().json.find("{\"sent\":2,\"applied\":2,") == 0);

  // A flush whose token source has no token: AUTH, and the report all the same (stoppedBy
  // "auth", the report still pending), as ius_outbox_flush gives it.
  {
    auto refused = ius::Client::create_with_token_source(
        "{\"baseUrl\":\"" + url + "\",\"retry\":{\"baseDelayMs\":10}}",
        []() -> std::variant<ius::Token, std::string> { return std::string("no token here"); });
    CHECK(refused.ok());
    if (!refused) return ius_summary();
    auto no_token = ius::Outbox::open(refused.value(), path + "-auth");
    CHECK(no_token.ok());
    if (!no_token) return ius_summary();
    CHECK(no_token.value()
              .enqueue("{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"cppob\"}",
                       "{\"devicesCount\":5}")
              .ok());
    auto auth = no_token.value().flush();
    CHECK(auth.ok());
    if (auth.ok()) {
      const ius::Outbox::FlushReport &got = auth.value();
      CHECK(got.stopped && got.stopped->status == IUS_STATUS_AUTH);
      CHECK(got.stopped && got.stopped->message.find("no token here") != std::string::npos);
      CHECK(got.json.find("\"pending\":1,") != std::string::npos);
      CHECK(got.json.find("\"stoppedBy\":\"auth\"") != std::string::npos);
    }
  }

  // A moved-from Client or Outbox holds no handle: interrupt() does nothing.
  ius::Outbox moved_outbox = std::move(outbox);
  outbox.interrupt();  // NOLINT(bugprone-use-after-move)
  CHECK(moved_outbox.stats().ok());
  // Nothing held: clear_hold() succeeds, says it cleared nothing, and the stats say no hold; a
  // moved-from Outbox refuses.
  auto cleared = moved_outbox.clear_hold();
  CHECK(cleared.ok() && !cleared.value());
  auto stats = moved_outbox.stats();
  CHECK(stats.ok() && stats.value().find("\"heldUntil\":null") != std::string::npos);
  // Refused, each error JSON freed (valgrind and LeakSanitizer see every one).
  CHECK(!outbox.clear_hold().ok());                                // NOLINT(bugprone-use-after-move)
  CHECK(!outbox.enqueue("{}", "{\"devicesCount\":1}").ok());      // NOLINT(bugprone-use-after-move)
  CHECK(!outbox.enqueue_many("[]").ok());                           // NOLINT(bugprone-use-after-move)
  ius::Client moved = std::move(client);
  client.interrupt();  // NOLINT(bugprone-use-after-move)
  CHECK(moved.update("c1", "cppstall", "{\"devicesCount\":3}").ok());
  return ius_summary();
}
