/* A stand-in for Windows' bcryptprimitives.dll, for running the Windows build's tests
 * under Wine 8, which lacks it. Rust's standard library draws its random bytes from
 * ProcessPrng there (Windows 10 and later have it); this one answers from BCryptGenRandom,
 * the call Wine does implement. Never shipped: the DLL on a Windows machine is the system's.
 */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
