// lic4es.hpp: header-only C++17 wrapper over the lic4es C API (include/lic4es.h).
//
//   lic4es::Engine engine(config_json);        // lic_init; throws lic4es::Error
//   if (engine.tier() >= lic4es::Tier::Pro) { ... }
//   // ~Engine() calls lic_shutdown
//
// The engine behind the C API is process-global: one Engine at a time (a second one
// throws Error with LIC_ERR_ALREADY_INITIALIZED). Engine is movable, not copyable.
#ifndef LIC4ES_HPP
#define LIC4ES_HPP

#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lic4es.h"

namespace lic4es {

/// License tier, ordered: Community < Pro < Team < Enterprise.
enum class Tier : int {
  Community = LIC_TIER_COMMUNITY,
  Pro = LIC_TIER_PRO,
  Team = LIC_TIER_TEAM,
  Enterprise = LIC_TIER_ENTERPRISE,
};

/// Severity of a log record.
enum class Level : int {
  Error = LIC_LOG_ERROR,
  Warn = LIC_LOG_WARN,
  Info = LIC_LOG_INFO,
  Debug = LIC_LOG_DEBUG,
};

/// A failed call: the lic_result code and lic_last_error's message.
class Error : public std::runtime_error {
 public:
  Error(lic_result code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  /// The C API's result code.
  lic_result code() const noexcept { return code_; }

 private:
  lic_result code_;
};

namespace detail {

/// Reads a string through a (buf, len, out_len) function of the C API.
inline lic_result read_string(lic_result (*fn)(char*, size_t, size_t*), std::string& out) {
  size_t needed = 0;
  lic_result r = fn(nullptr, 0, &needed);
  if (r != LIC_ERR_BUFFER_TOO_SMALL) {
    if (r == LIC_OK) out.clear();
    return r;
  }
  // The document may grow between the two calls; retry with the new size.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::vector<char> buf(needed);
    size_t len = 0;
    r = fn(buf.data(), buf.size(), &len);
    if (r == LIC_OK) {
      out.assign(buf.data(), len);
      return r;
    }
    if (r != LIC_ERR_BUFFER_TOO_SMALL) return r;
    needed = len;
  }
  return r;
}

inline std::string last_error() {
  std::string msg;
  read_string(lic_last_error, msg);
  return msg;
}

inline void check(lic_result r) {
  if (r != LIC_OK) throw Error(r, last_error());
}

/// A C string argument; a NUL inside would silently cut it short, so it is an error.
inline std::string c_arg(std::string_view s, const char* what) {
  if (s.find('\0') != std::string_view::npos) {
    throw Error(LIC_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL character");
  }
  return std::string(s);
}

using LogFn = std::function<void(Level, std::string_view)>;

inline std::mutex& log_mutex() {
  static std::mutex m;
  return m;
}

inline LogFn& log_fn() {
  static LogFn fn;
  return fn;
}

extern "C" inline void log_trampoline(void*, lic_log_level level, const char* message) {
  LogFn fn;
  {
    std::lock_guard<std::mutex> lock(log_mutex());
    fn = log_fn();
  }
  if (!fn) return;
  // An exception must not unwind into the library's threads.
  try {
    fn(static_cast<Level>(level), std::string_view(message));
  } catch (...) {
  }
}

}  // namespace detail

/// The licensing engine: constructed = initialised, destroyed = shut down.
class Engine {
 public:
  /// Calls lic_init with the JSON config; throws Error (LIC_ERR_CONFIG names the key).
  explicit Engine(std::string_view config_json) {
    const std::string cfg = detail::c_arg(config_json, "config");
    detail::check(lic_init(cfg.c_str()));
    owns_ = true;
  }

  ~Engine() { reset(); }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Engine(Engine&& other) noexcept : owns_(std::exchange(other.owns_, false)) {}

  Engine& operator=(Engine&& other) noexcept {
    if (this != &other) {
      reset();
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }

  /// The tier in effect (one atomic load).
  Tier tier() const noexcept { return static_cast<Tier>(lic_current_tier()); }

  /// The status document (JSON).
  std::string status_json() const {
    std::string s;
    detail::check(detail::read_string(lic_status_json, s));
    return s;
  }

  /// A quota; -1 means unlimited (also for a name the license does not set).
  int64_t quota(std::string_view name) const {
    return lic_quota(detail::c_arg(name, "quota name").c_str());
  }

  /// Whether the license grants a feature.
  bool has_feature(std::string_view name) const {
    return lic_has_feature(detail::c_arg(name, "feature name").c_str());
  }

  /// Usage counters and gauges, reported with telemetry.
  void add_queries(uint64_t n) const noexcept { lic_counter_add(LIC_COUNTER_QUERIES, n); }
  void add_joins(uint64_t n) const noexcept { lic_counter_add(LIC_COUNTER_JOINS, n); }
  void set_materialized_views_active(uint64_t v) const noexcept {
    lic_gauge_set(LIC_GAUGE_MVS_ACTIVE, v);
  }
  void set_clusters_connected(uint64_t v) const noexcept {
    lic_gauge_set(LIC_GAUGE_CLUSTERS_CONNECTED, v);
  }

  /// One synchronous refresh; throws Error (LIC_ERR_REFRESH_FAILED, LIC_ERR_UNSUPPORTED).
  void refresh_now() const { detail::check(lic_refresh_now()); }

  /// Checks the online seat out for `seconds` (at most the license's max-borrow): the
  /// tier then holds without heartbeats until the borrow ends, across restarts. Throws
  /// Error (LIC_ERR_UNSUPPORTED: no online seat; LIC_ERR_REFRESH_FAILED: refused or
  /// unreachable; LIC_ERR_INVALID_ARGUMENT: 0 seconds).
  void borrow(uint64_t seconds) const { detail::check(lic_borrow(seconds)); }

  /// Gives a borrowed seat back early; throws Error (LIC_ERR_UNSUPPORTED: none borrowed;
  /// LIC_ERR_REFRESH_FAILED: unreachable, the borrow holds).
  void return_borrow() const { detail::check(lic_return_borrow()); }

  /// Routes log records to any callable taking (Level, std::string_view). It may be
  /// called from the library's worker thread; exceptions it throws are swallowed.
  template <class F>
  static void set_log_callback(F&& callback) {
    {
      std::lock_guard<std::mutex> lock(detail::log_mutex());
      detail::log_fn() = detail::LogFn(std::forward<F>(callback));
    }
    detail::check(lic_set_log_callback(detail::log_trampoline, nullptr));
  }

  /// Sends log records back to stderr.
  static void clear_log_callback() {
    detail::check(lic_set_log_callback(nullptr, nullptr));
    std::lock_guard<std::mutex> lock(detail::log_mutex());
    detail::log_fn() = nullptr;
  }

  /// The library version.
  static std::string version() { return lic_version(); }

 private:
  void reset() noexcept {
    if (std::exchange(owns_, false)) lic_shutdown();
  }

  bool owns_ = false;
};

}  // namespace lic4es

#endif  // LIC4ES_HPP
