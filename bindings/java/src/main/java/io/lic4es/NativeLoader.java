package io.lic4es;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads {@code liblic4es.so.0} and its JNI shim: from {@code -Dlic4es.library.path} when set,
 * else with {@code System.loadLibrary}, else by extracting them from the jar into a unique
 * directory under {@code -Dlic4es.tmpdir} (default {@code java.io.tmpdir}).
 */
final class NativeLoader {
  static final String LIBRARY_PATH = "lic4es.library.path";
  static final String TMPDIR = "lic4es.tmpdir";
  /** The engine under its soname, as the jar carries it and as it is installed. */
  private static final String ENGINE = "liblic4es.so.0";
  private static final String SHIM = "liblic4es_jni.so";

  private static volatile String loadedFrom;

  private NativeLoader() {}

  /** Where the libraries were loaded from, or {@code null} before loading. */
  static String loadedFrom() {
    return loadedFrom;
  }

  static synchronized void load() {
    if (loadedFrom != null) {
      return;
    }
    String dir = System.getProperty(LIBRARY_PATH);
    if (dir != null && !dir.trim().isEmpty()) {
      loadPair(new File(dir), "-D" + LIBRARY_PATH + "=" + dir);
      loadedFrom = dir;
      return;
    }
    try {
      System.loadLibrary("lic4es_jni");
      loadedFrom = "java.library.path";
      return;
    } catch (UnsatisfiedLinkError notOnPath) {
      // Fall through to the copy inside the jar.
    }
    File extracted = extract();
    loadPair(extracted, "the copy extracted to " + extracted);
    loadedFrom = extracted.getAbsolutePath();
  }

  private static void loadPair(File dir, String where) {
    try {
      // The engine first, so the shim's dependency on it is already satisfied.
      System.load(new File(dir, ENGINE).getAbsolutePath());
      System.load(new File(dir, SHIM).getAbsolutePath());
    } catch (UnsatisfiedLinkError e) {
      UnsatisfiedLinkError wrapped =
          new UnsatisfiedLinkError(
              "cannot load lic4es from "
                  + where
                  + ": "
                  + e.getMessage()
                  + ". If that directory is on a filesystem mounted noexec, set -D"
                  + TMPDIR
                  + " to a directory that allows executables, or -D"
                  + LIBRARY_PATH
                  + " to a directory holding "
                  + ENGINE
                  + " and "
                  + SHIM);
      wrapped.initCause(e);
      throw wrapped;
    }
  }

  private static String platform() {
    String os = System.getProperty("os.name", "");
    String arch = System.getProperty("os.arch", "");
    String platform = platformOf(os, arch, runsOnMusl());
    if (platform == null) {
      throw new UnsatisfiedLinkError(
          "lic4es has no native library for " + os + "/" + arch + " in this jar; set -D"
              + LIBRARY_PATH);
    }
    return platform;
  }

  /**
   * The jar's directory for a JVM on {@code os}/{@code arch} ({@code os.name},
   * {@code os.arch}), on musl or not; {@code null} where the jar has none.
   */
  static String platformOf(String os, String arch, boolean musl) {
    if (!os.toLowerCase(Locale.ROOT).contains("linux")) {
      return null;
    }
    String a = arch.toLowerCase(Locale.ROOT);
    String cpu;
    if (a.equals("amd64") || a.equals("x86_64")) {
      cpu = "x86_64";
    } else if (a.equals("aarch64") || a.equals("arm64")) {
      cpu = "aarch64";
    } else {
      return null;
    }
    return "linux-" + cpu + (musl ? "-musl" : "");
  }

  /**
   * Whether this JVM runs on musl (Alpine): its loader is mapped into the process. Alpine
   * reports plain "Linux", and a musl loader on disk says nothing (Debian installs one
   * beside glibc's); what this process mapped does.
   */
  private static boolean runsOnMusl() {
    try {
      for (String line : Files.readAllLines(new File("/proc/self/maps").toPath())) {
        if (isMuslMapping(line)) {
          return true;
        }
      }
    } catch (IOException | RuntimeException e) {
      // No /proc: glibc, the common case.
    }
    return false;
  }

  /** Whether a line of /proc/self/maps maps musl's loader (which is its C library). */
  static boolean isMuslMapping(String line) {
    return line.contains("/ld-musl-") || line.contains("/libc.musl-");
  }

  private static File extract() {
    String base = System.getProperty(TMPDIR, System.getProperty("java.io.tmpdir"));
    String resource = "/native/" + platform() + "/";
    File dir;
    try {
      dir = Files.createTempDirectory(new File(base).toPath(), "lic4es-").toFile();
    } catch (IOException | RuntimeException e) {
      throw new UnsatisfiedLinkError(
          "cannot create a directory under " + base + " to extract lic4es (" + e
              + "); set -D" + TMPDIR + " to a writable directory that allows executables");
    }
    dir.deleteOnExit();
    for (String name : new String[] {ENGINE, SHIM}) {
      File target = new File(dir, name);
      try (InputStream in = NativeLoader.class.getResourceAsStream(resource + name)) {
        if (in == null) {
          throw new UnsatisfiedLinkError("the jar lacks " + resource + name);
        }
        Files.copy(in, target.toPath(), StandardCopyOption.REPLACE_EXISTING);
      } catch (IOException e) {
        throw new UnsatisfiedLinkError(
            "cannot extract " + name + " to " + dir + " (" + e + "); set -D" + TMPDIR);
      }
      target.deleteOnExit();
    }
    return dir;
  }
}
