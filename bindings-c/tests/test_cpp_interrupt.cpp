// ius::Client::interrupt() through the C++ wrapper: a call blocked on a stalled response returns
// IUS_STATUS_CANCELLED within half a second (5 s under valgrind), a call started afterwards
// succeeds, and a moved-from Client's interrupt does nothing.
//
// Usage: test_cpp_interrupt KIND (shared or static). The emulator is IUS_INTERRUPT_<KIND>_URL:
// the first PATCH of c1/cppstall is never answered.
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
                                     "\",\"timeouts\":{\"requestMs\":20000}}");
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

  // A moved-from Client holds no handle: interrupt() does nothing.
  ius::Client moved = std::move(client);
  client.interrupt();  // NOLINT(bugprone-use-after-move)
  CHECK(moved.update("c1", "cppstall", "{\"devicesCount\":3}").ok());
  return ius_summary();
}
