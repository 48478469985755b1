# CMake package for the installed intune-user-status C library. Relocatable: paths are derived
# from this file's location (<prefix>/lib/cmake/IntuneUserStatus).
#
#   find_package(IntuneUserStatus REQUIRED)
#   target_link_libraries(app PRIVATE IntuneUserStatus::intune_user_status)         # shared
#   target_link_libraries(app PRIVATE IntuneUserStatus::intune_user_status_static)  # static
#
# On Windows the shared target is bin/intune_user_status.dll with its import library
# (IMPORTED_IMPLIB: lib/intune_user_status.dll.lib from MSVC, lib/libintune_user_status.dll.a
# from mingw-w64); copy the DLL beside your program, e.g. with $<TARGET_RUNTIME_DLLS:app>.
include(CMakeFindDependencyMacro)
find_dependency(Threads)

get_filename_component(_ius_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(WIN32)
  if(EXISTS "${_ius_prefix}/lib/intune_user_status.dll.lib")
    set(_ius_implib "${_ius_prefix}/lib/intune_user_status.dll.lib")
    set(_ius_archive "${_ius_prefix}/lib/intune_user_status.lib")
  else()
    set(_ius_implib "${_ius_prefix}/lib/libintune_user_status.dll.a")
    set(_ius_archive "${_ius_prefix}/lib/libintune_user_status.a")
  endif()
  # What the Rust standard library in the static library needs from Windows.
  set(_ius_system_libs "ws2_32;bcrypt;advapi32;kernel32;ntdll;userenv;dbghelp")
else()
  set(_ius_archive "${_ius_prefix}/lib/libintune_user_status.a")
  set(_ius_system_libs "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()

if(NOT TARGET IntuneUserStatus::intune_user_status)
  add_library(IntuneUserStatus::intune_user_status SHARED IMPORTED)
  if(WIN32)
    set_target_properties(IntuneUserStatus::intune_user_status PROPERTIES
      IMPORTED_LOCATION "${_ius_prefix}/bin/intune_user_status.dll"
      IMPORTED_IMPLIB "${_ius_implib}"
      INTERFACE_INCLUDE_DIRECTORIES "${_ius_prefix}/include")
  else()
    set_target_properties(IntuneUserStatus::intune_user_status PROPERTIES
      # The development link; programs record the library's SONAME (libintune_user_status.so.<major>)
      # and find it at run time through their RPATH, LD_LIBRARY_PATH or the system's library path.
      IMPORTED_LOCATION "${_ius_prefix}/lib/libintune_user_status.so"
      INTERFACE_INCLUDE_DIRECTORIES "${_ius_prefix}/include")
  endif()
endif()
if(NOT TARGET IntuneUserStatus::intune_user_status_static)
  add_library(IntuneUserStatus::intune_user_status_static STATIC IMPORTED)
  set_target_properties(IntuneUserStatus::intune_user_status_static PROPERTIES
    IMPORTED_LOCATION "${_ius_archive}"
    INTERFACE_INCLUDE_DIRECTORIES "${_ius_prefix}/include"
    INTERFACE_LINK_LIBRARIES "${_ius_system_libs}")
endif()
unset(_ius_prefix)
unset(_ius_implib)
unset(_ius_archive)
unset(_ius_system_libs)
