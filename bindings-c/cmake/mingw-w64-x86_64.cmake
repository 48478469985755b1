# CMake toolchain for building C and C++ programs for 64-bit Windows on Linux with mingw-w64
# (Debian: g++-mingw-w64-x86-64), against the library cargo cross-built for
# x86_64-pc-windows-gnu (docs/portability.md, "Windows"):
#
#   cmake -S bindings-c -B build-windows -DIUS_LIB_DIR=$PWD/target/x86_64-pc-windows-gnu/release \
#         -DCMAKE_TOOLCHAIN_FILE=$PWD/bindings-c/cmake/mingw-w64-x86_64.cmake
#
# With Wine installed, ctest runs the Windows programs under it (CMAKE_CROSSCOMPILING_EMULATOR).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
# The POSIX thread model (winpthreads): C++'s std::thread and std::mutex need it with gcc 12.
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
# mingw's own runtimes linked in, so a program needs no mingw DLL beside it.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")
find_program(IUS_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
if(IUS_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${IUS_WINE}")
endif()
