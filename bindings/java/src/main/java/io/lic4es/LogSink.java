package io.lic4es;

import java.util.logging.Level;

/**
 * Receives the engine's log records. May be called from the engine's worker thread; an
 * exception it throws is dropped. Install one with {@link LicenseEngine#setLogSink}; by
 * default records go to {@code java.util.logging} (logger {@code io.lic4es}).
 */
@FunctionalInterface
public interface LogSink {
  /**
   * One log record.
   *
   * @param level SEVERE (error), WARNING, INFO or FINE (debug)
   * @param message the message
   */
  void log(Level level, String message);
}
