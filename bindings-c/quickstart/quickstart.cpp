#include <iostream>
#include "intune_user_status.hpp"

int main(int argc, char **argv) {
  std::string config = argc > 1 ? argv[1]
      : R"({"baseUrl":"http://127.0.0.1:8080","accessToken":"emulator-token"})";
  auto client = ius::Client::create(config);
  if (!client) {
    std::cerr << client.error().message << "\n";
    return 1;
  }
  auto updated = client.value().update("config-id", "status-id",
                                       R"({"status":"compliant","devicesCount":3})");
  if (!updated) {
    const ius::Error &e = updated.error();
    std::cerr << e.status_name() << ": " << e.message << "\n";
    return 1;
  }
  std::cout << "updated: " << updated.value().value_or("(204 No Content)") << "\n";
  return 0;
}
