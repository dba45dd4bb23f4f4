// Tests of bindings/cpp/lic4es.hpp. Usage: engine_test CONFIG_JSON_FILE CACHE_DIR
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "lic4es.hpp"

static int passed, failed;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (cond) {                                                       \
      ++passed;                                                       \
    } else {                                                          \
      ++failed;                                                       \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                 \
  } while (0)

template <class F>
static lic_result code_of(F&& f) {
  try {
    f();
  } catch (const lic4es::Error& e) {
    return e.code();
  }
  return LIC_OK;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CONFIG_JSON_FILE CACHE_DIR\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string config = ss.str();
  const std::string community = std::string("{\"cache-dir\": \"") + argv[2] + "\"}";

  std::vector<std::string> records;
  std::mutex records_mutex;
  lic4es::Engine::set_log_callback([&](lic4es::Level, std::string_view msg) {
    std::lock_guard<std::mutex> lock(records_mutex);
    records.emplace_back(msg);
  });

  {
    lic4es::Engine engine(config);
    CHECK(engine.tier() == lic4es::Tier::Pro);
    CHECK(engine.tier() > lic4es::Tier::Community);
    const std::string status = engine.status_json();
    CHECK(status.find("\"tier\":\"pro\"") != std::string::npos);
    CHECK(engine.quota("max_clusters") == 5);
    CHECK(engine.quota("not_set") == -1);
    CHECK(engine.has_feature("jdbc_driver"));
    CHECK(!engine.has_feature("nope"));
    engine.add_queries(3);
    engine.add_joins(1);
    engine.set_materialized_views_active(2);
    engine.set_clusters_connected(1);
    CHECK(code_of([&] { engine.refresh_now(); }) == LIC_ERR_UNSUPPORTED);
    CHECK(code_of([&] { (void)engine.quota(std::string("a\0b", 3)); }) ==
          LIC_ERR_INVALID_ARGUMENT);

    // One engine per process.
    CHECK(code_of([&] { lic4es::Engine second(config); }) == LIC_ERR_ALREADY_INITIALIZED);
    CHECK(engine.tier() == lic4es::Tier::Pro);

    // Moving transfers ownership; the moved-from engine does not shut down.
    lic4es::Engine moved(std::move(engine));
    CHECK(moved.tier() == lic4es::Tier::Pro);
    {
      lic4es::Engine again = std::move(moved);
      CHECK(again.tier() == lic4es::Tier::Pro);
    }
    CHECK(lic_current_tier() == LIC_TIER_COMMUNITY);
  }
  {
    std::lock_guard<std::mutex> lock(records_mutex);
    bool saw_license = false;
    for (const auto& r : records) saw_license |= r.find("License from static token") != std::string::npos;
    CHECK(saw_license);
  }

  // Bad config: the error names the key.
  try {
    lic4es::Engine bad("{\"refresh\": {\"intervall\": \"1h\"}}");
    CHECK(false);
  } catch (const lic4es::Error& e) {
    CHECK(e.code() == LIC_ERR_CONFIG);
    CHECK(std::string(e.what()).find("refresh.intervall") != std::string::npos);
  }
  CHECK(code_of([&] { lic4es::Engine nul(std::string("{}\0", 3)); }) == LIC_ERR_INVALID_ARGUMENT);

  // A callback that throws does not take the process down.
  lic4es::Engine::set_log_callback([](lic4es::Level, std::string_view) { throw 42; });
  {
    lic4es::Engine engine(config);
    CHECK(engine.tier() == lic4es::Tier::Pro);
  }
  lic4es::Engine::clear_log_callback();
  {
    lic4es::Engine engine(community);
    CHECK(engine.tier() == lic4es::Tier::Community);
    CHECK(engine.quota("max_joins") == 2);
  }
  CHECK(!lic4es::Engine::version().empty());

  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
