package io.lic4es;

/** Starts the engine and returns without shutdown: the JVM must still exit by itself. */
public final class ExitMain {
  public static void main(String[] args) throws Exception {
    LicenseEngine.init(LicenseEngineTest.config());
    System.out.println("tier=" + LicenseEngine.currentTier());
  }
}
