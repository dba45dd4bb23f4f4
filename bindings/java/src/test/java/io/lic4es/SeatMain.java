package io.lic4es;

/**
 * Starts the engine on the config of {@code -Dlic4es.test.config} and never calls
 * shutdown: with {@code wait} it blocks until the JVM is stopped (SIGTERM), else it returns
 * and the JVM exits by itself. The shutdown hook gives the seat back either way.
 */
public final class SeatMain {
  public static void main(String[] args) throws Exception {
    LicenseEngine.init(LicenseEngineTest.config());
    System.out.println("tier=" + LicenseEngine.currentTier());
    System.out.flush();
    if (args.length > 0 && args[0].equals("wait")) {
      Thread.sleep(Long.MAX_VALUE);
    }
  }
}
