package io.lic4es;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/** 8 threads read the tier while the main thread inits and shuts down, 30 times. */
public final class ConcurrencyMain {
  public static void main(String[] args) throws Exception {
    String cfg = LicenseEngineTest.config();
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong reads = new AtomicLong();
    AtomicLong bad = new AtomicLong();
    Thread[] readers = new Thread[8];
    for (int t = 0; t < readers.length; t++) {
      readers[t] =
          new Thread(
              () -> {
                while (!stop.get()) {
                  Tier tier = LicenseEngine.currentTier();
                  if (tier != Tier.PRO && tier != Tier.COMMUNITY) bad.incrementAndGet();
                  reads.incrementAndGet();
                }
              });
      readers[t].start();
    }
    for (int i = 0; i < 30; i++) {
      LicenseEngine.init(cfg);
      LicenseEngine.statusJson();
      LicenseEngine.shutdown();
    }
    stop.set(true);
    for (Thread t : readers) t.join();
    System.out.println("reads=" + reads.get() + " bad=" + bad.get());
    System.exit(bad.get() == 0 && reads.get() > 0 ? 0 : 1);
  }
}
