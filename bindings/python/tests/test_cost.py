"""Figures for the README (printed with ``-s``; the assertions check results, not time):
``current_tier()`` beside a no-op foreign call made the same way, and ``Engine`` start-up
with a seat acquire against a loopback license-server."""

from __future__ import annotations

import ctypes
import subprocess
import time
import timeit
from pathlib import Path

import lic4es
from conftest import LicenseServer


def ns_per_call(fn: object, n: int = 200_000) -> float:
    best = min(timeit.repeat(fn, number=n, repeat=7))  # type: ignore[arg-type]
    return best / n * 1e9


def test_current_tier_beside_a_no_op_foreign_call(server: LicenseServer, tmp_path: Path) -> None:
    src = tmp_path / "noop.c"
    src.write_text("int noop(void) { return 1; }\n")
    so = tmp_path / "libnoop.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(so), str(src)], check=True)
    # The binding calls lic_current_tier as ctypes.PyDLL does (keeping the GIL): the no-op
    # is called the same way, and also as ctypes.CDLL does, for scale.
    noop = ctypes.PyDLL(str(so)).noop
    noop_cdll = ctypes.CDLL(str(so)).noop
    raw = ctypes.PyDLL(lic4es.library_path()).lic_current_tier
    for f in (noop, noop_cdll, raw):
        f.restype = ctypes.c_int
        f.argtypes = []

    token = server.cli("mint", "--tier", "pro", "--sub", "org-cost", "--days", "30")
    with lic4es.Engine({"key": token, "public-keys": server.jwks, "cache-dir": str(tmp_path / "c")}):
        assert lic4es.current_tier() is lic4es.Tier.PRO and raw() == 1 and noop() == 1
        figures = {
            "no-op foreign call (ctypes, GIL kept)": ns_per_call(noop),
            "no-op foreign call (ctypes, GIL released)": ns_per_call(noop_cdll),
            "lic_current_tier (ctypes, GIL kept, raw int)": ns_per_call(raw),
            "lic4es.current_tier() -> Tier": ns_per_call(lic4es.current_tier),
        }
    base = figures["no-op foreign call (ctypes, GIL kept)"]
    for name, ns in figures.items():
        print(f"\n{name}: {ns:.1f} ns ({ns / base:.2f}x the no-op)", end="")
    print()


def test_engine_start_up_with_a_seat_acquire(server: LicenseServer, tmp_path: Path) -> None:
    key = server.api_key("team", "org-startup", "--seats", "100")
    times = []
    for i in range(10):
        cfg = server.host_config(tmp_path / f"s{i}", **{"api-key": key})
        t0 = time.perf_counter()
        engine = lic4es.Engine(cfg).start()
        times.append((time.perf_counter() - t0) * 1e3)
        try:
            assert engine.status()["seat"]["state"] == "online"
        finally:
            engine.close()
    times.sort()
    print(f"\nEngine(...).start() with a seat acquire, loopback: median {times[5]:.1f} ms, "
          f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms (10 starts)")
