/* C harness for liblic4es: loads the library with dlopen and checks the C API contract.
 * Usage: harness LIBRARY CONFIG_JSON_FILE CACHE_DIR
 * The config must hold a valid Pro static token; CACHE_DIR is used for a second,
 * Community-only config. Prints "N passed, N failed". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lic4es.h"

static int passed, failed;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) {                                                              \
      passed++;                                                              \
    } else {                                                                 \
      failed++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
    }                                                                        \
  } while (0)

/* dlclose unmaps the library on glibc. musl's dlclose never unmaps one (by design), so
   there the checks that it is gone are skipped, and the harness says so. */
#ifdef __GLIBC__
#define CHECK_UNMAPPED(name) CHECK(mapped(name) == 0)
#else
#define CHECK_UNMAPPED(name) ((void)(name))
#endif

typedef struct {
  void *handle;
  lic_result (*init)(const char *);
  lic_tier (*current_tier)(void);
  lic_result (*shutdown)(void);
  lic_result (*status_json)(char *, size_t, size_t *);
  lic_result (*last_error)(char *, size_t, size_t *);
  int64_t (*quota)(const char *);
  bool (*has_feature)(const char *);
  void (*counter_add)(lic_counter, uint64_t);
  void (*gauge_set)(lic_gauge, uint64_t);
  lic_result (*refresh_now)(void);
  lic_result (*borrow)(uint64_t);
  lic_result (*return_borrow)(void);
  lic_result (*set_log_callback)(lic_log_fn, void *);
  const char *(*version)(void);
} api;

/* Whether a file whose path ends with `name` is mapped into this process. */
static int mapped(const char *name) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[4096];
  int found = 0;
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f)) {
    size_t l = strlen(line);
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == ' ')) line[--l] = 0;
    if (l >= n && strcmp(line + l - n, name) == 0) {
      found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

static void *sym(void *h, const char *name) {
  void *p = dlsym(h, name);
  if (!p) {
    fprintf(stderr, "missing symbol %s: %s\n", name, dlerror());
    exit(2);
  }
  return p;
}

static int load(api *a, const char *path) {
  a->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!a->handle) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    return 0;
  }
  *(void **)&a->init = sym(a->handle, "lic_init");
  *(void **)&a->current_tier = sym(a->handle, "lic_current_tier");
  *(void **)&a->shutdown = sym(a->handle, "lic_shutdown");
  *(void **)&a->status_json = sym(a->handle, "lic_status_json");
  *(void **)&a->last_error = sym(a->handle, "lic_last_error");
  *(void **)&a->quota = sym(a->handle, "lic_quota");
  *(void **)&a->has_feature = sym(a->handle, "lic_has_feature");
  *(void **)&a->counter_add = sym(a->handle, "lic_counter_add");
  *(void **)&a->gauge_set = sym(a->handle, "lic_gauge_set");
  *(void **)&a->refresh_now = sym(a->handle, "lic_refresh_now");
  *(void **)&a->borrow = sym(a->handle, "lic_borrow");
  *(void **)&a->return_borrow = sym(a->handle, "lic_return_borrow");
  *(void **)&a->set_log_callback = sym(a->handle, "lic_set_log_callback");
  *(void **)&a->version = sym(a->handle, "lic_version");
  return 1;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  fclose(f);
  return buf;
}

static int log_records;
static void on_log(void *user_data, lic_log_level level, const char *message) {
  (void)level;
  (void)message;
  (*(int *)user_data)++;
}

static void check_errors_and_buffers(api *a, const char *config, const char *community) {
  size_t n = 12345;
  char small[8];
  char err[512];

  CHECK(a->current_tier() == LIC_TIER_COMMUNITY);
  CHECK(a->status_json(NULL, 0, &n) == LIC_ERR_NOT_INITIALIZED);
  CHECK(n == 12345);
  CHECK(a->shutdown() == LIC_ERR_NOT_INITIALIZED);
  CHECK(a->refresh_now() == LIC_ERR_NOT_INITIALIZED);
  CHECK(a->borrow(60) == LIC_ERR_NOT_INITIALIZED);
  CHECK(a->return_borrow() == LIC_ERR_NOT_INITIALIZED);

  /* NULL and malformed arguments. */
  CHECK(a->init(NULL) == LIC_ERR_INVALID_ARGUMENT);
  CHECK(a->last_error(err, sizeof err, &n) == LIC_OK);
  CHECK(n == strlen(err) && strstr(err, "NULL") != NULL);
  CHECK(a->init("{\"key\": \"\xff\xfe\"}") == LIC_ERR_INVALID_ARGUMENT);
  CHECK(a->quota(NULL) == -1);
  CHECK(!a->has_feature(NULL));
  CHECK(a->last_error(NULL, 5, &n) == LIC_ERR_INVALID_ARGUMENT);

  /* Bad config: the message names the key. */
  CHECK(a->init("{\"refresh\": {\"intervall\": \"1h\"}}") == LIC_ERR_CONFIG);
  CHECK(a->last_error(err, sizeof err, NULL) == LIC_OK);
  CHECK(strstr(err, "refresh.intervall") != NULL);
  CHECK(a->init("not json") == LIC_ERR_CONFIG);
  CHECK(a->init("[]") == LIC_ERR_CONFIG);
  CHECK(a->current_tier() == LIC_TIER_COMMUNITY);

  /* Before init: Community entitlements; counters work. */
  CHECK(a->quota("max_joins") == 2);
  CHECK(a->has_feature("repl"));
  a->counter_add(LIC_COUNTER_QUERIES, 3);
  a->counter_add((lic_counter)77, 1);
  a->gauge_set(LIC_GAUGE_CLUSTERS_CONNECTED, 2);
  a->gauge_set((lic_gauge)99, 1);

  /* Log callback. */
  log_records = 0;
  CHECK(a->set_log_callback(on_log, &log_records) == LIC_OK);

  /* Init with a static token. */
  CHECK(a->init(config) == LIC_OK);
  CHECK(a->current_tier() == LIC_TIER_PRO);
  CHECK(a->init(config) == LIC_ERR_ALREADY_INITIALIZED);
  CHECK(a->last_error(err, sizeof err, NULL) == LIC_OK && strlen(err) > 0);
  CHECK(a->quota("max_clusters") == 5);
  CHECK(a->quota("no_such_quota") == -1);
  CHECK(a->has_feature("jdbc_driver"));
  CHECK(!a->has_feature("no_such_feature"));
  CHECK(a->refresh_now() == LIC_ERR_UNSUPPORTED);
  /* A static token holds no seat: nothing to borrow or return; 0 seconds is no borrow. */
  CHECK(a->borrow(60) == LIC_ERR_UNSUPPORTED);
  CHECK(a->return_borrow() == LIC_ERR_UNSUPPORTED);
  CHECK(a->borrow(0) == LIC_ERR_INVALID_ARGUMENT);

  /* Status: size query, too small (buffer untouched), then success. */
  size_t needed = 0;
  CHECK(a->status_json(NULL, 0, &needed) == LIC_ERR_BUFFER_TOO_SMALL);
  CHECK(needed > 20);
  memset(small, 'X', sizeof small);
  n = 0;
  CHECK(a->status_json(small, sizeof small, &n) == LIC_ERR_BUFFER_TOO_SMALL);
  CHECK(n == needed);
  int untouched = 1;
  for (size_t i = 0; i < sizeof small; i++) untouched &= small[i] == 'X';
  CHECK(untouched);
  char *buf = malloc(needed);
  n = 0;
  CHECK(a->status_json(buf, needed, &n) == LIC_OK);
  CHECK(n == needed - 1 && strlen(buf) == n);
  CHECK(strstr(buf, "\"tier\":\"pro\"") != NULL);
  CHECK(strstr(buf, "\"source\":\"static\"") != NULL);
  CHECK(a->status_json(buf, needed, NULL) == LIC_OK);
  free(buf);

  /* last_error size query does not overwrite the message. */
  CHECK(a->last_error(NULL, 0, &n) == LIC_ERR_BUFFER_TOO_SMALL);
  CHECK(a->last_error(err, sizeof err, NULL) == LIC_OK && strlen(err) + 1 == n);

  CHECK(a->shutdown() == LIC_OK);
  CHECK(a->current_tier() == LIC_TIER_COMMUNITY);
  CHECK(a->shutdown() == LIC_ERR_NOT_INITIALIZED);
  CHECK(a->status_json(NULL, 0, &n) == LIC_ERR_NOT_INITIALIZED);
  CHECK(log_records > 0);
  CHECK(a->set_log_callback(NULL, NULL) == LIC_OK);

  /* init -> shutdown -> init. */
  CHECK(a->init(config) == LIC_OK);
  CHECK(a->current_tier() == LIC_TIER_PRO);
  CHECK(a->shutdown() == LIC_OK);
  CHECK(a->init(community) == LIC_OK);
  CHECK(a->current_tier() == LIC_TIER_COMMUNITY);
  CHECK(a->shutdown() == LIC_OK);

  CHECK(a->version() != NULL && strlen(a->version()) > 0);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s LIBRARY CONFIG_JSON_FILE CACHE_DIR\n", argv[0]);
    return 2;
  }
  char community[1024];
  if (snprintf(community, sizeof community, "{\"log-level\": \"error\", \"cache-dir\": \"%s\"}",
               argv[3]) >= (int)sizeof community) {
    fprintf(stderr, "cache dir path too long\n");
    return 2;
  }
  char *config = read_file(argv[2]);
  if (!config) {
    fprintf(stderr, "cannot read %s\n", argv[2]);
    return 2;
  }

  /* The file name the library is mapped under, to see that dlclose really unmaps it. */
  const char *base = strrchr(argv[1], '/');
  base = base ? base + 1 : argv[1];

#ifndef __GLIBC__
  printf("unload checks skipped: this C library's dlclose does not unmap (musl)\n");
#endif
  api a;
  if (!load(&a, argv[1])) return 2;
  CHECK(mapped(base) == 1);
  check_errors_and_buffers(&a, config, community);
  CHECK(dlclose(a.handle) == 0);
  /* Every call above ran on this thread, which is still alive: nothing may pin the
     library (a thread-local destructor registered by a call would). */
  CHECK_UNMAPPED(base);

  /* 20 cycles of dlopen -> init -> shutdown -> dlclose: state is fresh every time. */
  for (int i = 0; i < 20; i++) {
    api c;
    if (!load(&c, argv[1])) {
      failed++;
      break;
    }
    CHECK(c.current_tier() == LIC_TIER_COMMUNITY);
    CHECK(c.init(config) == LIC_OK);
    CHECK(c.current_tier() == LIC_TIER_PRO);
    CHECK(c.shutdown() == LIC_OK);
    CHECK(c.current_tier() == LIC_TIER_COMMUNITY);
    CHECK(dlclose(c.handle) == 0);
    CHECK_UNMAPPED(base);
  }

  free(config);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
