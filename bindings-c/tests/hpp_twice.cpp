// The C++ wrapper compiles on its own and when included twice.
#include "intune_user_status.hpp"
#include "intune_user_status.hpp"

bool ius_hpp_check();
bool ius_hpp_check() { return std::is_move_constructible_v<ius::Client>; }
