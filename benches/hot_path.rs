//! Budgets of section 12, measured through the C ABI: the per-query calls, init and
//! shutdown. Figures are printed, not asserted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::ffi::CString;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use lic4es::ffi::*;
use serde_json::json;

static BASELINE_CELL: AtomicU32 = AtomicU32::new(1);

#[inline(never)]
extern "C" fn one_relaxed_load() -> u32 {
    BASELINE_CELL.load(Ordering::Relaxed)
}

fn hot_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = live_pro_config(dir.path(), "error");
    assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);

    // Section 12's yardstick, in the same run: an indirect call of a function doing one
    // relaxed load. lic_current_tier is called through a pointer too, as a host does
    // through dlsym or JNI.
    let baseline: extern "C" fn() -> u32 = black_box(one_relaxed_load);
    c.bench_function("baseline: indirect call, one relaxed load", |b| {
        b.iter(|| black_box(baseline()))
    });
    let tier: extern "C" fn() -> lic_tier = black_box(lic_current_tier);
    c.bench_function("lic_current_tier", |b| b.iter(|| black_box(tier())));

    // The same, with a second thread calling it all the while.
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    black_box(lic_current_tier());
                }
            }
        })
    };
    c.bench_function("lic_current_tier (2 threads)", |b| {
        b.iter(|| black_box(tier()))
    });
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();

    c.bench_function("lic_counter_add", |b| {
        b.iter(|| lic_counter_add(black_box(LIC_COUNTER_QUERIES), black_box(1)))
    });
    let feature = c"jdbc_driver";
    c.bench_function("lic_has_feature", |b| {
        b.iter(|| black_box(lic_has_feature(black_box(feature.as_ptr()))))
    });
    let quota = c"max_clusters";
    c.bench_function("lic_quota", |b| {
        b.iter(|| black_box(lic_quota(black_box(quota.as_ptr()))))
    });
    assert_eq!(lic_shutdown(), lic_result::LIC_OK);
}

/// Times `lic_init` alone (shutdown untimed), or `lic_shutdown` alone.
fn lifecycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let static_cfg = live_pro_config(&dir.path().join("static"), "error");

    let cached = dir.path().join("cached");
    write_private(
        &cached,
        "license-cache.jwt",
        &mint(&claims("pro", wall_now() + 30 * DAY)),
    );
    let refused_cfg = CString::new(
        json!({
            "api-key": "sk-bench",
            "api-url": refused_url(),
            "public-keys": jwks(),
            "cache-dir": cached.to_str().unwrap(),
            "log-level": "error",
        })
        .to_string(),
    )
    .unwrap();

    // A seat backend on loopback: every init acquires, every shutdown releases.
    let fake = common::seat::SeatFake::new(Arc::new(lic4es::clock::SystemClock));
    let answer = fake.clone();
    let seat_server = TestServer::start(move |r| answer.answer(r));
    let seat_cfg = CString::new(
        json!({
            "api-key": "sk-bench",
            "api-url": seat_server.url(),
            "public-keys": jwks(),
            "cache-dir": dir.path().join("seat").to_str().unwrap(),
            "seat": {"enabled": true},
            "log-level": "error",
        })
        .to_string(),
    )
    .unwrap();

    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    g.bench_function("lic_init static token", |b| {
        b.iter_custom(|n| time_init(&static_cfg, n))
    });
    g.bench_function("lic_init refused backend + cache", |b| {
        b.iter_custom(|n| time_init(&refused_cfg, n))
    });
    g.bench_function("lic_init seat acquire, loopback", |b| {
        b.iter_custom(|n| time_init(&seat_cfg, n))
    });
    g.bench_function("lic_shutdown idle", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                assert_eq!(lic_init(static_cfg.as_ptr()), lic_result::LIC_OK);
                let t = Instant::now();
                assert_eq!(lic_shutdown(), lic_result::LIC_OK);
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn time_init(cfg: &CString, n: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(lic_init(cfg.as_ptr()), lic_result::LIC_OK);
        total += t.elapsed();
        assert_eq!(lic_current_tier(), lic_tier::LIC_TIER_PRO);
        assert_eq!(lic_shutdown(), lic_result::LIC_OK);
    }
    total
}

criterion_group!(benches, hot_path, lifecycle);
criterion_main!(benches);
