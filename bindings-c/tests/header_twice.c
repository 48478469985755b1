/* The C header compiles as C11 on its own and when included twice. */
#include "intune_user_status.h"
#include "intune_user_status.h"

ius_status ius_header_check_c(void);
ius_status ius_header_check_c(void) { return IUS_STATUS_OK; }
