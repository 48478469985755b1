// The C++ twin of examples/update_user_status.rs, using include/intune_user_status.hpp.
//
//   update_user_status_cpp BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]
#include <iostream>
#include <string>

#include "intune_user_status.hpp"

// A JSON string literal for `text` (ids may hold quotes or backslashes).
static std::string quoted(const std::string &text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    std::cerr << "usage: " << argv[0] << " BASE_URL TOKEN CONFIG_ID STATUS_ID PATCH_JSON [ROUTE]\n";
    return 2;
  }
  auto client = ius::Client::create("{\"baseUrl\":" + quoted(argv[1]) +
                                    ",\"accessToken\":" + quoted(argv[2]) + "}");
  if (!client) {
    std::cerr << client.error().json << "\n";
    return 1;
  }
  std::string target = "{\"deviceConfigurationId\":" + quoted(argv[3]) +
                       ",\"userStatusId\":" + quoted(argv[4]);
  if (argc == 7) target += ",\"route\":" + quoted(argv[6]);
  target += "}";
  auto updated = client.value().update_at(target, argv[5]);
  if (!updated) {
    std::cerr << updated.error().json << "\n";
    return 1;
  }
  if (updated.value()) {
    std::cout << *updated.value() << "\n";
  } else {
    std::cout << "updated (Graph answered 204 No Content)\n";
  }
  return 0;
}
