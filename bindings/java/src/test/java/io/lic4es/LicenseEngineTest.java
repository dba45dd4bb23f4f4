package io.lic4es;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.After;
import org.junit.Test;

public class LicenseEngineTest {
  static String config() throws Exception {
    return new String(
        Files.readAllBytes(Paths.get(System.getProperty("lic4es.test.config"))),
        StandardCharsets.UTF_8);
  }

  /** The loader's choice of the jar's native directory, by the JVM's platform strings. */
  @Test
  public void theLoaderPicksTheNativeDirectoryOfEachPlatform() {
    String[][] cases = {
      {"Linux", "amd64", "false", "linux-x86_64"},
      {"Linux", "x86_64", "false", "linux-x86_64"},
      {"Linux", "aarch64", "false", "linux-aarch64"},
      {"Linux", "arm64", "false", "linux-aarch64"},
      {"Linux", "amd64", "true", "linux-x86_64-musl"},
      {"Linux", "aarch64", "true", "linux-aarch64-musl"},
      {"Linux", "ppc64le", "false", null},
      {"Mac OS X", "aarch64", "false", null},
      {"Windows 11", "amd64", "false", null},
    };
    for (String[] c : cases) {
      assertEquals(
          String.join("/", c[0], c[1], c[2]),
          c[3],
          NativeLoader.platformOf(c[0], c[1], Boolean.parseBoolean(c[2])));
    }
    // Alpine's JVM maps musl's loader; a glibc JVM maps glibc's, even with musl on disk.
    assertTrue(
        NativeLoader.isMuslMapping(
            "7f3a1c000000-7f3a1c01a000 r--p 00000000 08:01 131 /lib/ld-musl-x86_64.so.1"));
    assertTrue(
        NativeLoader.isMuslMapping(
            "7f3a1c000000-7f3a1c01a000 r--p 00000000 08:01 131 /lib/libc.musl-aarch64.so.1"));
    assertFalse(
        NativeLoader.isMuslMapping(
            "7f3a1c000000-7f3a1c01a000 r--p 00000000 08:01 131 /usr/lib/x86_64-linux-gnu/libc.so.6"));
  }

  @After
  public void tearDown() {
    LicenseEngine.setLogSink(null);
    LicenseEngine.shutdown();
  }

  @Test
  public void staticTokenGivesPro() throws Exception {
    assertEquals(Tier.COMMUNITY, LicenseEngine.currentTier());
    LicenseEngine.init(config());
    assertEquals(Tier.PRO, LicenseEngine.currentTier());
    assertTrue(LicenseEngine.currentTier().atLeast(Tier.PRO));
    assertFalse(LicenseEngine.currentTier().atLeast(Tier.TEAM));
  }

  @Test
  public void handleShutsDownOnClose() throws Exception {
    try (LicenseEngine.Handle h = LicenseEngine.open(config())) {
      assertEquals(Tier.PRO, h.tier());
    }
    assertEquals(Tier.COMMUNITY, LicenseEngine.currentTier());
  }

  @Test
  @SuppressWarnings("unchecked")
  public void statusJsonParses() throws Exception {
    LicenseEngine.init(config());
    Map<String, Object> status = (Map<String, Object>) Json.parse(LicenseEngine.statusJson());
    assertEquals("pro", status.get("tier"));
    assertEquals("static", status.get("source"));
    assertEquals("Active", status.get("status"));
    assertEquals("org-acme-123", status.get("license_id"));
    assertTrue(status.get("features") instanceof List);
  }

  @Test
  public void statusBeforeInitIsNotInitialized() {
    try {
      LicenseEngine.statusJson();
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_NOT_INITIALIZED, e.code());
    }
  }

  @Test
  public void quotaAndFeature() throws Exception {
    assertEquals(2L, LicenseEngine.quota("max_joins"));
    LicenseEngine.init(config());
    assertEquals(5L, LicenseEngine.quota("max_clusters"));
    assertEquals(-1L, LicenseEngine.quota("max_result_rows"));
    assertTrue(LicenseEngine.hasFeature("jdbc_driver"));
    assertFalse(LicenseEngine.hasFeature("repl"));
  }

  @Test
  public void countersAndGauges() throws Exception {
    LicenseEngine.addQueries(5);
    LicenseEngine.addJoins(1);
    LicenseEngine.setMaterializedViewsActive(3);
    LicenseEngine.setClustersConnected(2);
    try {
      LicenseEngine.addQueries(-1);
      fail();
    } catch (IllegalArgumentException expected) {
      // negative counts are refused
    }
  }

  @Test
  public void logRecordReachesJavaUtilLogging() throws Exception {
    final List<LogRecord> records = Collections.synchronizedList(new ArrayList<LogRecord>());
    Handler h =
        new Handler() {
          @Override
          public void publish(LogRecord r) {
            records.add(r);
          }

          @Override
          public void flush() {}

          @Override
          public void close() {}
        };
    Logger logger = Logger.getLogger("io.lic4es");
    logger.addHandler(h);
    try {
      LicenseEngine.init(config());
    } finally {
      logger.removeHandler(h);
    }
    boolean seen = false;
    synchronized (records) {
      for (LogRecord r : records) {
        seen |= r.getLevel() == Level.INFO && r.getMessage().contains("License from static token");
      }
    }
    assertTrue("no INFO record in " + records.size(), seen);
  }

  @Test
  public void customSinkReplacesJul() throws Exception {
    final List<String> seen = Collections.synchronizedList(new ArrayList<String>());
    LicenseEngine.setLogSink((level, message) -> seen.add(level + " " + message));
    LicenseEngine.init(config());
    assertTrue(seen.toString(), seen.toString().contains("INFO License from static token"));
  }

  @Test
  public void badConfigNamesTheKey() {
    try {
      LicenseEngine.init("{\"refresh\": {\"intervall\": \"1h\"}}");
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_CONFIG, e.code());
      assertEquals("LIC_ERR_CONFIG", e.codeName());
      assertTrue(e.getMessage(), e.getMessage().contains("refresh.intervall"));
    }
  }

  @Test
  public void nulInsideAStringIsAnErrorNotATruncation() {
    try {
      LicenseEngine.init("{}\u0000{\"garbage\": 1}");
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_INVALID_ARGUMENT, e.code());
    }
    try {
      LicenseEngine.hasFeature("repl\u0000x");
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_INVALID_ARGUMENT, e.code());
    }
  }

  @Test
  public void shutdownTwiceIsHarmless() throws Exception {
    LicenseEngine.init(config());
    assertTrue(LicenseEngine.shutdown());
    assertFalse(LicenseEngine.shutdown());
    assertEquals(Tier.COMMUNITY, LicenseEngine.currentTier());
  }

  @Test
  public void initTwiceIsAlreadyInitialized() throws Exception {
    LicenseEngine.init(config());
    try {
      LicenseEngine.init(config());
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_ALREADY_INITIALIZED, e.code());
    }
  }

  @Test
  public void refreshOfAStaticTokenWithoutRefreshUrlIsUnsupported() throws Exception {
    LicenseEngine.init(config());
    try {
      LicenseEngine.refreshNow();
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_UNSUPPORTED, e.code());
    }
  }

  @Test
  public void aStaticTokenHasNoSeatToBorrowOrReturn() throws Exception {
    try {
      LicenseEngine.borrow(60);
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_NOT_INITIALIZED, e.code());
    }
    LicenseEngine.init(config());
    try {
      LicenseEngine.borrow(0);
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("at least 1"));
    }
    try {
      LicenseEngine.borrow(60);
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_UNSUPPORTED, e.code());
    }
    try {
      LicenseEngine.returnBorrow();
      fail();
    } catch (LicenseException e) {
      assertEquals(LicenseException.LIC_ERR_UNSUPPORTED, e.code());
    }
  }

  @Test
  public void hundredInitShutdownCycles() throws Exception {
    String cfg = config();
    for (int i = 0; i < 100; i++) {
      LicenseEngine.init(cfg);
      assertEquals(Tier.PRO, LicenseEngine.currentTier());
      assertTrue(LicenseEngine.shutdown());
    }
  }

  @Test
  public void theJvmProxyPropertiesBecomeProxyAndNoProxyWhenTheConfigNamesNone() {
    String[] props = {"https.proxyHost", "https.proxyPort", "http.nonProxyHosts"};
    String[] saved = new String[props.length];
    for (int i = 0; i < props.length; i++) {
      saved[i] = System.getProperty(props[i]);
    }
    try {
      System.clearProperty("https.proxyHost");
      assertEquals("{\"a\":1}", LicenseEngine.withJvmProxy("{\"a\":1}"));
      System.setProperty("https.proxyHost", "proxy.corp");
      System.setProperty("https.proxyPort", "3128");
      System.setProperty("http.nonProxyHosts", "localhost|*.corp.example|10.*|license.corp");
      assertEquals(
          "{\"proxy\":\"http://proxy.corp:3128\","
              + "\"no-proxy\":\"localhost,.corp.example,license.corp\",\"a\":{\"proxy\":1}}",
          LicenseEngine.withJvmProxy("{\"a\":{\"proxy\":1}}"));
      assertEquals(
          "{\"proxy\":\"http://proxy.corp:3128\",\"no-proxy\":\"localhost,.corp.example,license.corp\"}",
          LicenseEngine.withJvmProxy("{}"));
      // The config's own proxy (or "none") wins; so does its own no-proxy.
      String own = "{\"proxy\": \"none\", \"x\": \"a,\\\"proxy\\\"\"}";
      assertEquals(own, LicenseEngine.withJvmProxy(own));
      assertEquals(
          "{\"proxy\":\"http://proxy.corp:3128\",\"no-proxy\": \"x\"}",
          LicenseEngine.withJvmProxy("{\"no-proxy\": \"x\"}"));
      // Not an object this can read: left for the engine to refuse.
      assertEquals("[1]", LicenseEngine.withJvmProxy("[1]"));
      assertEquals("{\"a", LicenseEngine.withJvmProxy("{\"a"));
      System.clearProperty("https.proxyPort");
      System.setProperty("https.proxyHost", "::1");
      assertTrue(LicenseEngine.withJvmProxy("{}").startsWith("{\"proxy\":\"http://[::1]:443\""));
    } finally {
      for (int i = 0; i < props.length; i++) {
        if (saved[i] == null) {
          System.clearProperty(props[i]);
        } else {
          System.setProperty(props[i], saved[i]);
        }
      }
    }
  }

  @Test
  public void versionIsReported() {
    assertFalse(LicenseEngine.version().isEmpty());
  }
}
