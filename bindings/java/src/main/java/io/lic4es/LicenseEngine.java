package io.lic4es;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The lic4es licensing engine for JVM hosts: a thin layer over the C API.
 *
 * <pre>{@code
 * LicenseEngine.init(json);                 // the softclient4es.license block as JSON
 * if (LicenseEngine.currentTier().atLeast(Tier.PRO)) { ... }
 * LicenseEngine.shutdown();
 * }</pre>
 *
 * <p>The engine is process-wide: one {@code init} at a time. Every method is safe from any
 * thread. Log records go to {@code java.util.logging} (logger {@code io.lic4es}) unless a
 * {@link LogSink} is installed.
 *
 * <p>A JVM that exits without {@link #shutdown()} (SIGTERM in a container, {@code
 * System.exit}, the last thread ending) still gives its seat back: {@code init} registers a
 * shutdown hook that shuts the engine down, bounded by {@code seat.release-timeout}.
 * {@code -Dlic4es.shutdownHook=false} leaves it out. When the config names no {@code
 * proxy}, the JVM's {@code https.proxyHost} / {@code https.proxyPort} (and {@code
 * http.nonProxyHosts} as {@code no-proxy}) are passed to the engine.
 */
public final class LicenseEngine {
  private static final Logger LOGGER = Logger.getLogger("io.lic4es");
  private static volatile LogSink sink;
  private static final AtomicBoolean HOOKED = new AtomicBoolean();

  static {
    NativeLoader.load();
  }

  private LicenseEngine() {}

  /**
   * Starts the engine: parses the config, resolves the license (before returning) and
   * starts its background thread. A missing or expired license is not an error: the tier
   * is Community and {@link #statusJson()} says why.
   *
   * @param configJson the {@code softclient4es.license} block rendered as JSON
   * @throws LicenseException {@code LIC_ERR_CONFIG} naming the bad key,
   *     {@code LIC_ERR_ALREADY_INITIALIZED}, {@code LIC_ERR_INVALID_ARGUMENT}
   */
  public static void init(String configJson) {
    utf8(configJson, "config"); // the null and NUL checks, before the config is read
    check(nativeInit(utf8(withJvmProxy(configJson), "config")));
    installShutdownHook();
  }

  /**
   * Registers, once per JVM, the hook that shuts the engine down at exit. Calling {@link
   * #shutdown()} before is harmless: the hook then finds no engine.
   */
  private static void installShutdownHook() {
    if ("false".equalsIgnoreCase(System.getProperty("lic4es.shutdownHook", "true").trim())) {
      return;
    }
    if (HOOKED.compareAndSet(false, true)) {
      Thread hook =
          new Thread(
              () -> {
                try {
                  nativeShutdown();
                } catch (Throwable t) {
                  // Exiting anyway: nothing to report to.
                }
              },
              "lic4es-shutdown");
      Runtime.getRuntime().addShutdownHook(hook);
    }
  }

  /**
   * The config with the JVM's HTTPS proxy properties added as {@code proxy} and {@code
   * no-proxy}, when it names none itself; unchanged otherwise (and when it is not an object
   * this can read: the engine then says what is wrong with it).
   */
  static String withJvmProxy(String json) {
    String host = System.getProperty("https.proxyHost");
    if (host == null || host.trim().isEmpty()) {
      return json;
    }
    Set<String> keys = topLevelKeys(json);
    if (keys == null || keys.contains("proxy")) {
      return json;
    }
    host = host.trim();
    if (host.indexOf(':') >= 0 && !host.startsWith("[")) {
      host = "[" + host + "]";
    }
    String port = System.getProperty("https.proxyPort", "443").trim();
    StringBuilder added = new StringBuilder();
    added.append("\"proxy\":").append(quote("http://" + host + ":" + port));
    String nonProxy = System.getProperty("http.nonProxyHosts");
    if (nonProxy != null && !keys.contains("no-proxy")) {
      String list = noProxyList(nonProxy);
      if (!list.isEmpty()) {
        added.append(",\"no-proxy\":").append(quote(list));
      }
    }
    int open = json.indexOf('{');
    String rest = json.substring(open + 1);
    return json.substring(0, open + 1) + added + (keys.isEmpty() ? "" : ",") + rest;
  }

  /**
   * {@code http.nonProxyHosts} ({@code a.corp|*.corp.example|localhost}) as {@code no-proxy}
   * ({@code a.corp,.corp.example,localhost}); a pattern with a wildcard elsewhere than its
   * start cannot be said there and is left out.
   */
  static String noProxyList(String nonProxyHosts) {
    StringBuilder out = new StringBuilder();
    for (String p : nonProxyHosts.split("\\|")) {
      p = p.trim();
      if (p.startsWith("*.")) {
        p = p.substring(1);
      }
      if (p.isEmpty() || p.indexOf('*') >= 0 || p.indexOf(',') >= 0) {
        continue;
      }
      if (out.length() > 0) {
        out.append(',');
      }
      out.append(p);
    }
    return out.toString();
  }

  /** The keys of a JSON object's top level, or {@code null} when it is not an object. */
  static Set<String> topLevelKeys(String json) {
    int i = 0;
    while (i < json.length() && Character.isWhitespace(json.charAt(i))) {
      i++;
    }
    if (i >= json.length() || json.charAt(i) != '{') {
      return null;
    }
    Set<String> keys = new HashSet<>();
    int depth = 0;
    boolean expectKey = false;
    for (; i < json.length(); i++) {
      char c = json.charAt(i);
      if (c == '"') {
        int end = i + 1;
        while (end < json.length() && json.charAt(end) != '"') {
          end += json.charAt(end) == '\\' ? 2 : 1;
        }
        if (end >= json.length()) {
          return null;
        }
        if (depth == 1 && expectKey) {
          keys.add(json.substring(i + 1, end));
          expectKey = false;
        }
        i = end;
      } else if (c == '{' || c == '[') {
        depth++;
        expectKey = depth == 1;
      } else if (c == '}' || c == ']') {
        depth--;
      } else if (c == ',' && depth == 1) {
        expectKey = true;
      }
    }
    return keys;
  }

  private static String quote(String s) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\');
      }
      if (c >= ' ') {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }

  /**
   * Starts the engine and returns a handle whose {@code close()} shuts it down, for
   * try-with-resources.
   *
   * @param configJson the config, as for {@link #init(String)}
   * @return the handle
   * @throws LicenseException as {@link #init(String)}
   */
  public static Handle open(String configJson) {
    init(configJson);
    return new Handle();
  }

  /**
   * The tier in effect; one atomic load in the library, cheap enough to call per query.
   *
   * @return the tier; {@link Tier#COMMUNITY} before init and after shutdown
   */
  public static Tier currentTier() {
    return Tier.fromCode(nativeCurrentTier());
  }

  /**
   * Stops the engine and joins its thread. Calling it again does no harm.
   *
   * @return {@code true} if an engine was running, {@code false} if none was
   * @throws LicenseException when called from a log sink ({@code LIC_ERR_INVALID_ARGUMENT})
   */
  public static boolean shutdown() {
    int r = nativeShutdown();
    if (r == LicenseException.LIC_ERR_NOT_INITIALIZED) {
      return false;
    }
    check(r);
    return true;
  }

  /**
   * The status document: tier, source, status, grace, license details, entitlements,
   * refresh and telemetry state.
   *
   * @return the status as JSON
   * @throws LicenseException {@code LIC_ERR_NOT_INITIALIZED} before init
   */
  public static String statusJson() {
    byte[][] out = new byte[1][];
    check(nativeStatusJson(out));
    return new String(out[0], StandardCharsets.UTF_8);
  }

  /**
   * A quota of the license in effect.
   *
   * @param name the quota, such as {@code "max_clusters"}
   * @return the limit; -1 means unlimited (also for a name the license does not set)
   * @throws LicenseException {@code LIC_ERR_INVALID_ARGUMENT} for a name with a NUL
   */
  public static long quota(String name) {
    return nativeQuota(utf8(name, "quota name"));
  }

  /**
   * Whether the license in effect grants a feature.
   *
   * @param name the feature, such as {@code "jdbc_driver"}
   * @return {@code true} when granted
   * @throws LicenseException {@code LIC_ERR_INVALID_ARGUMENT} for a name with a NUL
   */
  public static boolean hasFeature(String name) {
    return nativeHasFeature(utf8(name, "feature name"));
  }

  /**
   * Counts queries run (reported with telemetry).
   *
   * @param n how many, at least 0
   */
  public static void addQueries(long n) {
    nativeCounterAdd(0, nonNegative(n));
  }

  /**
   * Counts joins run (reported with telemetry).
   *
   * @param n how many, at least 0
   */
  public static void addJoins(long n) {
    nativeCounterAdd(1, nonNegative(n));
  }

  /**
   * Sets the number of materialized views active.
   *
   * @param value the current number, at least 0
   */
  public static void setMaterializedViewsActive(long value) {
    nativeGaugeSet(0, nonNegative(value));
  }

  /**
   * Sets the number of clusters connected.
   *
   * @param value the current number, at least 0
   */
  public static void setClustersConnected(long value) {
    nativeGaugeSet(1, nonNegative(value));
  }

  /**
   * One refresh, now, waiting for its outcome (for {@code REFRESH LICENSE}).
   *
   * @throws LicenseException {@code LIC_ERR_REFRESH_FAILED} with the reason,
   *     {@code LIC_ERR_UNSUPPORTED} when there is nothing to refresh from
   */
  public static void refreshNow() {
    check(nativeRefreshNow());
  }

  /**
   * Checks the online seat out for a while (a trip without the network), waiting for the
   * answer: the tier then holds without heartbeats until the borrow ends, across restarts,
   * and the license server counts the seat meanwhile.
   *
   * @param seconds how long, at least 1 (the server grants at most the license's {@code
   *     max-borrow})
   * @throws LicenseException {@code LIC_ERR_UNSUPPORTED} when no online seat is held,
   *     {@code LIC_ERR_REFRESH_FAILED} with the reason when the server could not be reached
   *     or refused
   */
  public static void borrow(long seconds) {
    if (seconds < 1) {
      throw new IllegalArgumentException("seconds must be at least 1: " + seconds);
    }
    check(nativeBorrow(seconds));
  }

  /**
   * Gives a borrowed seat back before its end and acquires a seat again.
   *
   * @throws LicenseException {@code LIC_ERR_UNSUPPORTED} when no seat is borrowed, {@code
   *     LIC_ERR_REFRESH_FAILED} when the server could not be reached (the borrow holds)
   */
  public static void returnBorrow() {
    check(nativeReturnBorrow());
  }

  /**
   * Routes log records to {@code sink}; {@code null} restores {@code java.util.logging}.
   *
   * @param logSink where records go
   */
  public static void setLogSink(LogSink logSink) {
    sink = logSink;
  }

  /**
   * The library version.
   *
   * @return the version string
   */
  public static String version() {
    return nativeVersion();
  }

  /**
   * Where the native libraries were loaded from (a directory, or {@code
   * "java.library.path"}).
   *
   * @return the origin
   */
  public static String nativeOrigin() {
    return NativeLoader.loadedFrom();
  }

  /** A started engine; {@link #close()} shuts it down. */
  public static final class Handle implements AutoCloseable {
    private boolean closed;

    private Handle() {}

    /**
     * The tier in effect.
     *
     * @return the tier
     */
    public Tier tier() {
      return currentTier();
    }

    /** Shuts the engine down (once). */
    @Override
    public synchronized void close() {
      if (!closed) {
        closed = true;
        shutdown();
      }
    }
  }

  /** Called by the native shim for every log record, possibly on the worker thread. */
  static void dispatchLog(int level, byte[] message) {
    try {
      String text = new String(message, StandardCharsets.UTF_8);
      Level julLevel;
      switch (level) {
        case 0:
          julLevel = Level.SEVERE;
          break;
        case 1:
          julLevel = Level.WARNING;
          break;
        case 2:
          julLevel = Level.INFO;
          break;
        default:
          julLevel = Level.FINE;
      }
      LogSink s = sink;
      if (s != null) {
        s.log(julLevel, text);
      } else {
        LOGGER.log(julLevel, text);
      }
    } catch (Throwable t) {
      // A failing sink must not disturb the engine.
    }
  }

  private static long nonNegative(long n) {
    if (n < 0) {
      throw new IllegalArgumentException("must be at least 0: " + n);
    }
    return n;
  }

  private static byte[] utf8(String s, String what) {
    if (s == null) {
      throw new LicenseException(LicenseException.LIC_ERR_INVALID_ARGUMENT, what + " is null");
    }
    if (s.indexOf('\0') >= 0) {
      throw new LicenseException(
          LicenseException.LIC_ERR_INVALID_ARGUMENT, what + " contains a NUL character");
    }
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static void check(int code) {
    if (code != 0) {
      byte[] msg = nativeLastError();
      throw new LicenseException(
          code, msg == null ? "" : new String(msg, StandardCharsets.UTF_8));
    }
  }

  private static native int nativeInit(byte[] config);

  private static native int nativeCurrentTier();

  private static native int nativeShutdown();

  private static native int nativeStatusJson(byte[][] out);

  private static native byte[] nativeLastError();

  private static native long nativeQuota(byte[] name);

  private static native boolean nativeHasFeature(byte[] name);

  private static native void nativeCounterAdd(int counter, long n);

  private static native void nativeGaugeSet(int gauge, long value);

  private static native int nativeRefreshNow();

  private static native int nativeBorrow(long seconds);

  private static native int nativeReturnBorrow();

  private static native String nativeVersion();
}
