package io.lic4es;

/** A failed call: the C API's {@code lic_result} code and the engine's message. */
public class LicenseException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** NULL where a value is needed, invalid UTF-8, or a NUL inside a string. */
  public static final int LIC_ERR_INVALID_ARGUMENT = 1;
  /** The config is not valid JSON, has an unknown key or a bad value; the message names it. */
  public static final int LIC_ERR_CONFIG = 2;
  /** {@code init} was already called without {@code shutdown}. */
  public static final int LIC_ERR_ALREADY_INITIALIZED = 3;
  /** {@code init} has not been called. */
  public static final int LIC_ERR_NOT_INITIALIZED = 4;
  /** A buffer was too small (not seen from Java). */
  public static final int LIC_ERR_BUFFER_TOO_SMALL = 5;
  /**
   * {@code refreshNow}, {@code borrow}, {@code returnBorrow}: the backend could not be
   * reached or refused.
   */
  public static final int LIC_ERR_REFRESH_FAILED = 6;
  /**
   * {@code refreshNow} with nothing to refresh from; {@code borrow} with no online seat;
   * {@code returnBorrow} with no seat borrowed.
   */
  public static final int LIC_ERR_UNSUPPORTED = 7;
  /** Called in a child process after fork(). */
  public static final int LIC_ERR_FORKED = 8;
  /** A bug in the library. */
  public static final int LIC_ERR_INTERNAL = 99;

  private final int code;

  /**
   * A failure with a code and message.
   *
   * @param code the {@code lic_result} code
   * @param message what went wrong
   */
  public LicenseException(int code, String message) {
    super(codeName(code) + ": " + message);
    this.code = code;
  }

  /**
   * The {@code lic_result} code.
   *
   * @return the code, one of the {@code LIC_ERR_*} constants
   */
  public int code() {
    return code;
  }

  /**
   * The name of the code, such as {@code "LIC_ERR_CONFIG"}.
   *
   * @return the name
   */
  public String codeName() {
    return codeName(code);
  }

  /**
   * The name of a {@code lic_result} code.
   *
   * @param code the code
   * @return its name, or {@code "LIC_ERR_<n>"} for an unknown one
   */
  public static String codeName(int code) {
    switch (code) {
      case 0:
        return "LIC_OK";
      case LIC_ERR_INVALID_ARGUMENT:
        return "LIC_ERR_INVALID_ARGUMENT";
      case LIC_ERR_CONFIG:
        return "LIC_ERR_CONFIG";
      case LIC_ERR_ALREADY_INITIALIZED:
        return "LIC_ERR_ALREADY_INITIALIZED";
      case LIC_ERR_NOT_INITIALIZED:
        return "LIC_ERR_NOT_INITIALIZED";
      case LIC_ERR_BUFFER_TOO_SMALL:
        return "LIC_ERR_BUFFER_TOO_SMALL";
      case LIC_ERR_REFRESH_FAILED:
        return "LIC_ERR_REFRESH_FAILED";
      case LIC_ERR_UNSUPPORTED:
        return "LIC_ERR_UNSUPPORTED";
      case LIC_ERR_FORKED:
        return "LIC_ERR_FORKED";
      case LIC_ERR_INTERNAL:
        return "LIC_ERR_INTERNAL";
      default:
        return "LIC_ERR_" + code;
    }
  }
}
