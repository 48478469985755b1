// Exercises the C++ wrapper (include/intune_user_status.hpp): creation errors, moves, results and
// the parsed error fields, against the emulator. Usage: test_cpp_api PREFIX
#include "intune_user_status.hpp"

#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "test_support.h"

static_assert(!std::is_copy_constructible_v<ius::Client>, "Client is move-only");
static_assert(std::is_nothrow_move_constructible_v<ius::Client>, "Client moves cheaply");
// error() on a temporary Result returns by value, so binding it to a reference cannot dangle.
static_assert(std::is_same_v<decltype(std::declval<ius::Result<int>>().error()), ius::Error>,
              "Result::error() && returns a value");
static_assert(std::is_same_v<decltype(std::declval<ius::Result<int> &>().error()),
                             const ius::Error &>,
              "Result::error() & returns a reference");

static std::string config(const std::string &url, const std::string &extra = "") {
  return "{\"baseUrl\":\"" + url + "\",\"accessToken\":\"" + ius_env("IUS_TEST_TOKEN") + "\"" +
         extra + "}";
}

static bool contains(const std::optional<std::string> &text, const std::string &needle) {
  return text && text->find(needle) != std::string::npos;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  const std::string prefix = argv[1];
  const std::string base_url = ius_env("IUS_TEST_BASE_URL");
  const std::string base_url_200 = ius_env("IUS_TEST_BASE_URL_200");
  CHECK(ius::version() == ius_env("IUS_TEST_VERSION"));

  // Creation errors carry the parsed fields; escapes in the JSON are decoded.
  {
    auto bad = ius::Client::create("{\"accessToken\":\"t\",\"we\\\"ird\\u00e9\":1}");
    CHECK(!bad.ok() && !bad);
    CHECK(bad.error().status == IUS_STATUS_CONFIG);
    CHECK(std::string(bad.error().status_name()) == "CONFIG");
    CHECK(bad.error().field == std::string("we\"ird\xc3\xa9"));
    CHECK(!bad.error().message.empty() && !bad.error().http_status);
    CHECK(bad.error().json.find("\"status\":\"CONFIG\"") != std::string::npos);
    auto not_json = ius::Client::create("{");
    CHECK(!not_json && not_json.error().status == IUS_STATUS_INVALID_JSON &&
          not_json.error().field == std::string("config_json"));
    auto with_nul = ius::Client::create(std::string("{\"accessToken\":\"t\"}\0x", 20));
    CHECK(!with_nul && with_nul.error().status == IUS_STATUS_INVALID_INPUT);
  }

  auto created = ius::Client::create(config(base_url));
  CHECK(created.ok());
  if (!created) return ius_summary();
  ius::Client first = std::move(created).value();
  CHECK(first.get() != nullptr);

  // Move construction leaves the source empty and safe to call.
  ius::Client second = std::move(first);
  CHECK(first.get() == nullptr && second.get() != nullptr);  // NOLINT(bugprone-use-after-move)
  {
    auto moved_from = first.update("c1", "s1", "{\"devicesCount\":1}");  // NOLINT
    CHECK(!moved_from && moved_from.error().status == IUS_STATUS_NULL_ARGUMENT &&
          moved_from.error().field == std::string("client"));
  }

  // 204: success without an object.
  {
    auto updated = second.update("c1", "s1", "{\"devicesCount\":11}");
    CHECK(updated.ok() && !updated.value().has_value());
  }
  // 404 with Graph's ids.
  {
    auto missing = second.update("c1", "missing", "{\"devicesCount\":1}");
    CHECK(!missing.ok());
    const ius::Error &error = missing.error();
    CHECK(error.status == IUS_STATUS_GRAPH && error.http_status == 404);
    // The metrics JSON counts both updates so far: the 204 and this 404.
    auto metrics = second.metrics();
    CHECK(metrics.ok() &&
          metrics.value().find("\"update\":{\"sent\":2,\"answered\":{\"2xx\":1,") !=
              std::string::npos &&
          metrics.value().find("\"404\":1,") != std::string::npos);
    auto moved_metrics = first.metrics();  // NOLINT(bugprone-use-after-move)
    CHECK(!moved_metrics && moved_metrics.error().status == IUS_STATUS_NULL_ARGUMENT);
    CHECK(error.code == std::string("ResourceNotFound"));
    CHECK(error.request_id && !error.request_id->empty());
    CHECK(error.client_request_id && error.client_request_id->size() == 36);
    CHECK(!error.field && !error.retry_after_seconds);
  }
  // Input errors and a NUL byte C cannot carry.
  {
    auto bad = second.update("c1", "s1", "{\"devicesCount\":-4}");
    CHECK(!bad && bad.error().status == IUS_STATUS_INVALID_INPUT &&
          bad.error().field == std::string("devicesCount"));
    auto nul = second.update("c1", "s1", std::string("{}\0", 3));
    CHECK(!nul && nul.error().field == std::string("patch_json"));
    auto bad_target = second.update_at("{\"deviceConfigurationId\":\"c1\"}", "{\"devicesCount\":1}");
    CHECK(!bad_target && bad_target.error().field == std::string("userStatusId"));
  }

  // Move assignment frees the old handle (valgrind would report it) and takes the new one.
  {
    auto other = ius::Client::create(config(base_url_200));
    CHECK(other.ok());
    if (other) {
      second = std::move(other).value();
      auto updated = second.update_at(
          "{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"" + prefix + "-t0\"}",
          "{\"devicesCount\":77}");
      CHECK(updated.ok() && contains(updated.value(), "\"devicesCount\":77") &&
            contains(updated.value(), "\"id\":\"" + prefix + "-t0\""));
    }
  }

  // 429: the fractional Retry-After arrives as a double.
  {
    struct ius_canned canned;
    int port = ius_canned_start(
        &canned,
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2.5\r\nrequest-id: rq-429\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n");
    auto client = ius::Client::create(
        config("http://127.0.0.1:" + std::to_string(port), ",\"retry\":{\"maxDelayMs\":1000}"));
    CHECK(client.ok());
    if (client) {
      auto throttled = client.value().update("c1", "s1", "{\"devicesCount\":1}");
      CHECK(!throttled && throttled.error().status == IUS_STATUS_THROTTLED);
      CHECK(throttled.error().retry_after_seconds == 2.5 && throttled.error().http_status == 429);
      CHECK(throttled.error().request_id == std::string("rq-429"));
      CHECK(contains(throttled.error().retry_stopped, "maxDelayMs"));
    }
    ius_canned_join(&canned);
  }

  // Get, list, delete, create and bulk through the wrapper (nothing here changes a status).
  {
    auto client = ius::Client::create(config(base_url));
    CHECK(client.ok());
    if (client) {
      const ius::Client &c = client.value();
      const auto npos = std::string::npos;
      auto got = c.get_status("{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"s1\"}");
      CHECK(got.ok() && got.value().find("\"id\":\"s1\"") != npos);
      auto listed = c.list("{\"deviceConfigurationId\":\"c1\"}", std::string("{\"top\":5}"));
      CHECK(listed.ok() && listed.value().front() == '[' &&
            listed.value().find("\"id\":\"s1\"") != npos);
      auto gone = c.remove("{\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"missing\"}");
      CHECK(!gone && gone.error().http_status == 404);
      auto invalid = c.create("{\"deviceConfigurationId\":\"c1\"}", "{\"devicesCount\":-1}");
      CHECK(!invalid && invalid.error().field == std::string("devicesCount"));
      auto none = c.update_many("[]");
      CHECK(none.ok() && none.value().json == "[]" && !none.value().partial);
      auto partial = c.update_many("[7]");
      CHECK(partial.ok() && partial.value().partial &&
            partial.value().json.find("\"field\":\"items[0]\"") != npos);
      auto not_array = c.update_many("{}");
      CHECK(!not_array && not_array.error().status == IUS_STATUS_INVALID_INPUT &&
            not_array.error().field == std::string("items_json"));
    }
  }

  // Tokens from a C++ function: used, and its failures (a message, an exception) become AUTH.
  {
    int calls = 0;
    const std::string token = ius_env("IUS_TEST_TOKEN");
    auto sourced = ius::Client::create_with_token_source(
        "{\"baseUrl\":\"" + base_url + "\"}", [&]() -> std::variant<ius::Token, std::string> {
          ++calls;
          return ius::Token{token, 3600};
        });
    CHECK(sourced.ok());
    if (sourced) {
      ius::Client moved = std::move(sourced).value();  // the source moves with the client
      CHECK(moved.update("c1", "s1", "{\"devicesCount\":21}").ok());
      CHECK(moved.update("c1", "s1", "{\"devicesCount\":22}").ok());
      CHECK(calls == 1);  // cached for its lifetime
    }
    auto refusing = ius::Client::create_with_token_source(
        "{\"baseUrl\":\"" + base_url + "\"}",
        []() -> std::variant<ius::Token, std::string> { return std::string("broker is down"); });
    CHECK(refusing.ok());
    if (refusing) {
      auto failed = refusing.value().update("c1", "s1", "{\"devicesCount\":1}");
      CHECK(!failed && failed.error().status == IUS_STATUS_AUTH &&
            failed.error().message.find("broker is down") != std::string::npos);
    }
    auto throwing = ius::Client::create_with_token_source(
        "{\"baseUrl\":\"" + base_url + "\"}",
        []() -> std::variant<ius::Token, std::string> { throw std::runtime_error("boom"); });
    CHECK(throwing.ok());
    if (throwing) {
      const ius::Error error = throwing.value().update("c1", "s1", "{\"devicesCount\":1}").error();
      CHECK(error.status == IUS_STATUS_AUTH &&
            error.message.find("threw") != std::string::npos);
    }
    auto with_token = ius::Client::create_with_token_source(config(base_url), [] {
      return std::variant<ius::Token, std::string>(ius::Token{"t", 60});
    });
    CHECK(!with_token && with_token.error().field == std::string("accessToken"));
  }

  // Log messages to a C++ function, then off again.
  {
    std::vector<std::string> seen;
    std::mutex seen_guard;
    CHECK(ius::set_log_callback(
              [&](ius_log_level, const char *message) {
                std::lock_guard<std::mutex> lock(seen_guard);
                seen.emplace_back(message);
              },
              IUS_LOG_LEVEL_DEBUG) == IUS_STATUS_OK);
    CHECK(second.update("c1", prefix + "-t0", "{\"devicesCount\":77}").ok());
    CHECK(ius::set_log_callback(nullptr, IUS_LOG_LEVEL_DEBUG) == IUS_STATUS_OK);
    bool saw_patch = false;
    for (const auto &message : seen) saw_patch |= message.find("PATCH") != std::string::npos;
    CHECK(saw_patch);
    std::size_t after_off = seen.size();
    CHECK(second.update("c1", prefix + "-t0", "{\"devicesCount\":77}").ok());
    CHECK(seen.size() == after_off);
  }
  return ius_summary();
}
