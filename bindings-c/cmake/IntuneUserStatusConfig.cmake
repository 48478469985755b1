# CMake package for the installed intune-user-status C library. Relocatable: paths are derived
# from this file's location (<prefix>/lib/cmake/IntuneUserStatus).
#
#   find_package(IntuneUserStatus REQUIRED)
#   target_link_libraries(app PRIVATE IntuneUserStatus::intune_user_status)         # shared
#   target_link_libraries(app PRIVATE IntuneUserStatus::intune_user_status_static)  # static
include(CMakeFindDependencyMacro)
find_dependency(Threads)

get_filename_component(_ius_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET IntuneUserStatus::intune_user_status)
  add_library(IntuneUserStatus::intune_user_status SHARED IMPORTED)
  set_target_properties(IntuneUserStatus::intune_user_status PROPERTIES
    # The development link; programs record the library's SONAME (libintune_user_status.so.<major>)
    # and find it at run time through their RPATH, LD_LIBRARY_PATH or the system's library path.
    IMPORTED_LOCATION "${_ius_prefix}/lib/libintune_user_status.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_ius_prefix}/include")
endif()
if(NOT TARGET IntuneUserStatus::intune_user_status_static)
  add_library(IntuneUserStatus::intune_user_status_static STATIC IMPORTED)
  set_target_properties(IntuneUserStatus::intune_user_status_static PROPERTIES
    IMPORTED_LOCATION "${_ius_prefix}/lib/libintune_user_status.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_ius_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()
unset(_ius_prefix)
