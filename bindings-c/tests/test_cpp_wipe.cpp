// The C++ token source's copy of a token is overwritten before its memory is released
// (SECURITY.md, "What it protects"). This program replaces operator new and delete (over malloc
// and free, so valgrind and AddressSanitizer still see every block) and, while armed, counts the
// blocks released that still hold the token's first bytes.
//
// Usage: test_cpp_wipe KIND (shared or static; nothing else is needed: the client's requests go
// to a closed loopback port after the token source has been asked). Under valgrind, which puts
// its own operator new and delete in place of these (IUS_TEST_VARIANT=valgrind), only the calls
// are made and checked; the other runs (plain, clang, sanitizers) look into the memory.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <variant>

#include "intune_user_status.hpp"
#include "test_support.h"

namespace {

const char MARKER[] = "wiped-cpp-token-7d2c91e0";
bool armed = false;  // the token source runs on the thread that calls update: this one
int found = 0;

// Each block starts with its size, so operator delete can look into it.
constexpr std::size_t HEADER = alignof(std::max_align_t);

bool holds_marker(const unsigned char *block, std::size_t size) {
  const std::size_t n = sizeof MARKER - 1;
  for (std::size_t i = 0; i + n <= size; i++)
    if (std::memcmp(block + i, MARKER, n) == 0) return true;
  return false;
}

}  // namespace

void *operator new(std::size_t size) {
  auto *base = static_cast<unsigned char *>(std::malloc(size + HEADER));
  if (base == nullptr) throw std::bad_alloc();
  std::memcpy(base, &size, sizeof size);
  return base + HEADER;
}

void operator delete(void *ptr) noexcept {
  if (ptr == nullptr) return;
  auto *base = static_cast<unsigned char *>(ptr) - HEADER;
  std::size_t size = 0;
  std::memcpy(&size, base, sizeof size);
  if (armed && holds_marker(static_cast<unsigned char *>(ptr), size)) found++;
  std::free(base);
}

void operator delete(void *ptr, std::size_t) noexcept { operator delete(ptr); }

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  (void)argv;
  (void)ius_canned_start;
  (void)ius_canned_join;
  (void)ius_env;
  const char *variant = std::getenv("IUS_TEST_VARIANT");
  const bool inspect = variant == nullptr || std::strcmp(variant, "valgrind") != 0;

  // The check sees a string released as it was.
  if (inspect) {
    armed = true;
    { std::string copy(MARKER); }  // longer than the short-string buffer: one heap block
    armed = false;
    CHECK(found == 1);
    found = 0;
  }

  // A closed loopback port: the update fails after the token source was asked.
  int port = 0;
  ius_close_socket(ius_listen(&port));
  const std::string config = "{\"baseUrl\":\"http://127.0.0.1:" + std::to_string(port) +
                             "\",\"retry\":{\"maxRetries\":0}}";
  // Longer than the library's first buffer, so the wrapper keeps it for the second call; the
  // marker not at the start, which clear() alone overwrites with the terminator.
  std::string token = std::string("t.") + MARKER;
  token.append(9000 - token.size(), 'x');
  int calls = 0;

  armed = true;
  {
    auto client = ius::Client::create_with_token_source(
        config, [&]() -> std::variant<ius::Token, std::string> {
          ++calls;
          return ius::Token{token, 3600};
        });
    CHECK(client.ok());
    if (client) {
      auto updated = client.value().update("c1", "u1", "{\"devicesCount\":1}");
      CHECK(!updated && updated.error().status == IUS_STATUS_NETWORK);
    }
  }
  armed = false;
  CHECK(calls == 1);
  if (inspect) {
    if (found != 0) std::fprintf(stderr, "%d released blocks still held the token\n", found);
    CHECK(found == 0);
  }
  return ius_summary();
}
