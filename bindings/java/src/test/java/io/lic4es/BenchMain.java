package io.lic4es;

/** Per-call cost of currentTier(): 10^8 calls after a warm-up. Prints, asserts nothing. */
public final class BenchMain {
  public static void main(String[] args) throws Exception {
    LicenseEngine.init(LicenseEngineTest.config());
    long sink = 0;
    for (int i = 0; i < 10_000_000; i++) sink += LicenseEngine.currentTier().ordinal();
    long n = 100_000_000L;
    long t0 = System.nanoTime();
    for (long i = 0; i < n; i++) sink += LicenseEngine.currentTier().ordinal();
    long dt = System.nanoTime() - t0;
    System.out.printf("currentTier: %.2f ns/call over %d calls (checksum %d)%n",
        (double) dt / n, n, sink);
    LicenseEngine.shutdown();
  }
}
