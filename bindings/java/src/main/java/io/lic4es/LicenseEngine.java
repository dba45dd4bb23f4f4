package io.lic4es;

import java.nio.charset.StandardCharsets;
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
 */
public final class LicenseEngine {
  private static final Logger LOGGER = Logger.getLogger("io.lic4es");
  private static volatile LogSink sink;

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
    check(nativeInit(utf8(configJson, "config")));
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

  private static native String nativeVersion();
}
