package io.lic4es;

/** Loads the library however the loader decides, and reports from where. */
public final class ExtractMain {
  public static void main(String[] args) throws Exception {
    try (LicenseEngine.Handle h = LicenseEngine.open(LicenseEngineTest.config())) {
      System.out.println("tier=" + h.tier() + " origin=" + LicenseEngine.nativeOrigin());
    }
  }
}
