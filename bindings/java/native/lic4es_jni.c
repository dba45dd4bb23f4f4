/* JNI shim for io.lic4es.LicenseEngine over include/lic4es.h.
 *
 * Strings cross as UTF-8 byte arrays (never JNI's modified UTF-8). Log records from the
 * engine's worker thread attach it to the JVM once, as a daemon thread, and a pthread key
 * destructor detaches it when the thread ends, so the JVM can always exit. */
#include <jni.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lic4es.h"

static JavaVM *g_vm;
static jclass g_engine_class;
static jmethodID g_dispatch_log;
static pthread_key_t g_detach_key;

static void detach_thread(void *vm) {
  if (vm) (*(JavaVM *)vm)->DetachCurrentThread((JavaVM *)vm);
}

/* A NUL-terminated copy of a byte[]; NULL when the array is NULL or memory is short. */
static char *copy_bytes(JNIEnv *env, jbyteArray bytes) {
  if (!bytes) return NULL;
  jsize n = (*env)->GetArrayLength(env, bytes);
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  (*env)->GetByteArrayRegion(env, bytes, 0, n, (jbyte *)s);
  s[n] = 0;
  return s;
}

static jbyteArray new_bytes(JNIEnv *env, const char *s, size_t n) {
  jbyteArray a = (*env)->NewByteArray(env, (jsize)n);
  if (a) (*env)->SetByteArrayRegion(env, a, 0, (jsize)n, (const jbyte *)s);
  return a;
}

static void on_log(void *user_data, lic_log_level level, const char *message) {
  (void)user_data;
  JNIEnv *env = NULL;
  jint got = (*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_8);
  if (got == JNI_EDETACHED) {
    JavaVMAttachArgs args = {JNI_VERSION_1_8, "lic4es-worker", NULL};
    if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)&env, &args) != JNI_OK) return;
    pthread_setspecific(g_detach_key, g_vm);
  } else if (got != JNI_OK) {
    return;
  }
  jbyteArray msg = new_bytes(env, message, strlen(message));
  if (!msg) {
    (*env)->ExceptionClear(env);
    return;
  }
  (*env)->CallStaticVoidMethod(env, g_engine_class, g_dispatch_log, (jint)level, msg);
  if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
  (*env)->DeleteLocalRef(env, msg);
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) return JNI_ERR;
  g_vm = vm;
  jclass cls = (*env)->FindClass(env, "io/lic4es/LicenseEngine");
  if (!cls) return JNI_ERR;
  g_engine_class = (*env)->NewGlobalRef(env, cls);
  (*env)->DeleteLocalRef(env, cls);
  g_dispatch_log = (*env)->GetStaticMethodID(env, g_engine_class, "dispatchLog", "(I[B)V");
  if (!g_engine_class || !g_dispatch_log) return JNI_ERR;
  if (pthread_key_create(&g_detach_key, detach_thread) != 0) return JNI_ERR;
  lic_set_log_callback(on_log, NULL);
  return JNI_VERSION_1_8;
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeInit(JNIEnv *env, jclass cls,
                                                               jbyteArray config) {
  (void)cls;
  char *c = copy_bytes(env, config);
  if (!c) return LIC_ERR_INVALID_ARGUMENT;
  lic_result r = lic_init(c);
  free(c);
  return (jint)r;
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeCurrentTier(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)lic_current_tier();
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeShutdown(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)lic_shutdown();
}

/* Reads a string through a (buf, len, out_len) function, growing the buffer as needed. */
static lic_result read_string(lic_result (*fn)(char *, size_t, size_t *), char **out,
                              size_t *out_len) {
  size_t needed = 0;
  lic_result r = fn(NULL, 0, &needed);
  for (int attempt = 0; attempt < 4 && r == LIC_ERR_BUFFER_TOO_SMALL; attempt++) {
    char *buf = malloc(needed);
    if (!buf) return LIC_ERR_INTERNAL;
    size_t len = 0;
    r = fn(buf, needed, &len);
    if (r == LIC_OK) {
      *out = buf;
      *out_len = len;
      return r;
    }
    free(buf);
    needed = len;
  }
  if (r == LIC_OK) {
    *out = NULL;
    *out_len = 0;
  }
  return r;
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeStatusJson(JNIEnv *env, jclass cls,
                                                                     jobjectArray out) {
  (void)cls;
  char *s = NULL;
  size_t n = 0;
  lic_result r = read_string(lic_status_json, &s, &n);
  if (r != LIC_OK) return (jint)r;
  jbyteArray a = new_bytes(env, s ? s : "", n);
  free(s);
  if (!a) return LIC_ERR_INTERNAL;
  (*env)->SetObjectArrayElement(env, out, 0, a);
  (*env)->DeleteLocalRef(env, a);
  return LIC_OK;
}

JNIEXPORT jbyteArray JNICALL Java_io_lic4es_LicenseEngine_nativeLastError(JNIEnv *env,
                                                                          jclass cls) {
  (void)cls;
  char *s = NULL;
  size_t n = 0;
  if (read_string(lic_last_error, &s, &n) != LIC_OK) return NULL;
  jbyteArray a = new_bytes(env, s ? s : "", n);
  free(s);
  return a;
}

JNIEXPORT jlong JNICALL Java_io_lic4es_LicenseEngine_nativeQuota(JNIEnv *env, jclass cls,
                                                                 jbyteArray name) {
  (void)cls;
  char *c = copy_bytes(env, name);
  if (!c) return -1;
  int64_t q = lic_quota(c);
  free(c);
  return (jlong)q;
}

JNIEXPORT jboolean JNICALL Java_io_lic4es_LicenseEngine_nativeHasFeature(JNIEnv *env, jclass cls,
                                                                         jbyteArray name) {
  (void)cls;
  char *c = copy_bytes(env, name);
  if (!c) return JNI_FALSE;
  bool f = lic_has_feature(c);
  free(c);
  return f ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT void JNICALL Java_io_lic4es_LicenseEngine_nativeCounterAdd(JNIEnv *env, jclass cls,
                                                                     jint counter, jlong n) {
  (void)env;
  (void)cls;
  lic_counter_add((lic_counter)counter, (uint64_t)n);
}

JNIEXPORT void JNICALL Java_io_lic4es_LicenseEngine_nativeGaugeSet(JNIEnv *env, jclass cls,
                                                                   jint gauge, jlong value) {
  (void)env;
  (void)cls;
  lic_gauge_set((lic_gauge)gauge, (uint64_t)value);
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeRefreshNow(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)lic_refresh_now();
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeBorrow(JNIEnv *env, jclass cls,
                                                                 jlong seconds) {
  (void)env;
  (void)cls;
  return (jint)lic_borrow((uint64_t)seconds);
}

JNIEXPORT jint JNICALL Java_io_lic4es_LicenseEngine_nativeReturnBorrow(JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)lic_return_borrow();
}

JNIEXPORT jstring JNICALL Java_io_lic4es_LicenseEngine_nativeVersion(JNIEnv *env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, lic_version());
}
