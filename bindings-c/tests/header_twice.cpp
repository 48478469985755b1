// The C header compiles as C++17 on its own and when included twice.
#include "intune_user_status.h"
#include "intune_user_status.h"

ius_status ius_header_check_cpp();
ius_status ius_header_check_cpp() { return IUS_STATUS_OK; }
