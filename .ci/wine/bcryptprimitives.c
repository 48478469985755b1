/* TEST-ONLY stand-in for Windows' bcryptprimitives.dll, for running Windows builds under Wine 8.
 * It never ships and is never installed: .ci/windows builds it into its own folder of the
 * Windows target directory and puts that folder on WINEPATH only for the programs it runs.
 *
 * Why: Rust's standard library (1.78 and later) imports ProcessPrng from bcryptprimitives.dll for
 * random bytes (HashMap seeds); Windows 10 and 11 have it, Wine 8 has no such DLL, so every Rust
 * program fails to load. This exports ProcessPrng on top of RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements from the host's random source. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
