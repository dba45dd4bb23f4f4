"""The binding in this process: tokens, API keys, errors, logging, threads, asyncio, fork."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import lic4es
from conftest import LicenseServer, wait_for


@pytest.fixture(autouse=True)
def no_engine_left() -> Any:
    yield
    lic4es.shutdown()


def test_a_static_token_gives_its_tier_with_nothing_on_the_network(
    server: LicenseServer, tmp_path: Path
) -> None:
    token = server.cli("mint", "--tier", "team", "--sub", "org-static", "--days", "30")
    with lic4es.Engine({"key": token, "public-keys": server.jwks, "cache-dir": str(tmp_path)}) as e:
        assert e.current_tier() is lic4es.Tier.TEAM
        assert lic4es.current_tier() >= lic4es.Tier.PRO
        st = e.status()
        assert st["source"] == "static" and st["tier"] == "team", st
        assert isinstance(lic4es.quota("no-such-quota"), int)
        assert lic4es.has_feature("no-such-feature") is False
    assert lic4es.current_tier() is lic4es.Tier.COMMUNITY
    assert lic4es.shutdown() is False


def test_an_api_key_fetches_a_token_and_refresh_now_works(
    server: LicenseServer, tmp_path: Path
) -> None:
    key = server.api_key("pro", "org-py", "--seats", "unlimited")
    lic4es.init(server.host_config(tmp_path, **{"api-key": key}))
    assert lic4es.current_tier() is lic4es.Tier.PRO
    assert lic4es.status()["source"] == "api_key"
    server.cli("license", "set-tier", "--sub", "org-py", "--tier", "enterprise")

    def upgraded() -> bool:
        lic4es.refresh_now()
        return lic4es.current_tier() is lic4es.Tier.ENTERPRISE

    wait_for("the upgrade, by refresh_now", upgraded)
    lic4es.add_queries(3)
    lic4es.add_joins()
    lic4es.set_materialized_views_active(2)
    lic4es.set_clusters_connected(1)
    assert lic4es.shutdown() is True


def test_errors_carry_the_c_code_and_message(tmp_path: Path) -> None:
    with pytest.raises(lic4es.LicenseError) as bad:
        lic4es.init({"no-such-key": 1, "cache-dir": str(tmp_path)})
    assert bad.value.code is lic4es.Code.CONFIG
    assert "no-such-key" in bad.value.message
    with pytest.raises(lic4es.LicenseError) as nul:
        lic4es.init('{"cache-dir": "a\0b"}')
    assert nul.value.code is lic4es.Code.INVALID_ARGUMENT
    with pytest.raises(TypeError):
        lic4es.init(42)  # type: ignore[arg-type]
    with pytest.raises(lic4es.LicenseError) as before:
        lic4es.status()
    assert before.value.code is lic4es.Code.NOT_INITIALIZED
    with pytest.raises(lic4es.LicenseError) as nothing:
        lic4es.refresh_now()
    assert nothing.value.code is lic4es.Code.NOT_INITIALIZED
    lic4es.init({"cache-dir": str(tmp_path)})
    with pytest.raises(lic4es.LicenseError) as twice:
        lic4es.init({"cache-dir": str(tmp_path)})
    assert twice.value.code is lic4es.Code.ALREADY_INITIALIZED
    with pytest.raises(lic4es.LicenseError) as unsupported:
        lic4es.refresh_now()
    assert unsupported.value.code is lic4es.Code.UNSUPPORTED
    with pytest.raises(ValueError):
        lic4es.add_queries(-1)


def test_the_context_manager_shuts_down_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with lic4es.Engine({"cache-dir": str(tmp_path)}):
            assert lic4es.status()["tier"] == "community"
            raise RuntimeError("boom")
    with pytest.raises(lic4es.LicenseError) as after:
        lic4es.status()
    assert after.value.code is lic4es.Code.NOT_INITIALIZED


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_records_reach_logging_from_the_worker_thread_too(
    server: LicenseServer, tmp_path: Path
) -> None:
    handler = Records()
    log = logging.getLogger("lic4es")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        key = server.api_key("pro", "org-log", "--seats", "unlimited")
        lic4es.init(
            server.host_config(tmp_path, **{"api-key": key, "log-level": "debug",
                                            "refresh": {"interval": "1s"}})
        )
        main = threading.get_ident()
        worker = wait_for(
            "a record from the engine's thread",
            lambda: [r for r in handler.records if r.thread != main],
        )
        assert all(r.name == "lic4es" for r in worker)
        assert {r.levelno for r in handler.records} <= {
            logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG
        }
        # WARN becomes WARNING: the server goes away and the next refresh fails.
        server.stop()
        wait_for(
            "a WARNING",
            lambda: [r for r in handler.records if r.levelno == logging.WARNING],
        )
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)


def test_calls_from_eight_threads_at_once(server: LicenseServer, tmp_path: Path) -> None:
    key = server.api_key("pro", "org-threads", "--seats", "unlimited")
    lic4es.init(server.host_config(tmp_path, **{"api-key": key}))
    errors: list[BaseException] = []
    tiers: set[lic4es.Tier] = set()
    start = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            start.wait()
            for n in range(2000):
                tiers.add(lic4es.current_tier())
                lic4es.add_queries(1)
                if n % 100 == 0:
                    assert lic4es.status()["tier"] == "pro"
                    lic4es.has_feature("x")
                    lic4es.quota("max_clusters")
            if i == 0:
                lic4es.refresh_now()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert tiers == {lic4es.Tier.PRO}


def test_asyncio_start_up_and_refresh_leave_the_event_loop_running(
    server: LicenseServer, tmp_path: Path
) -> None:
    # A backend that accepts and never answers: start-up waits its read timeout (1 s).
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    config = {
        "api-key": "sk-never-answered",
        "api-url": f"http://127.0.0.1:{port}",
        "public-keys": server.jwks,
        "cache-dir": str(tmp_path),
        "connect-timeout": "1s",
        "read-timeout": "1s",
    }

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        t0 = time.monotonic()
        async with lic4es.Engine(config) as engine:
            started = time.monotonic() - t0
            during_start = ticks
            assert engine.current_tier() is lic4es.Tier.COMMUNITY
            with pytest.raises(lic4es.LicenseError) as failed:
                await lic4es.refresh_now_async()
            assert failed.value.code is lic4es.Code.REFRESH_FAILED
        stop.set()
        await task
        assert started >= 0.9, started
        return during_start, ticks

    try:
        during_start, total = asyncio.run(main())
    finally:
        silent.close()
    # About 100 ticks a second while the start-up waited on the network.
    assert during_start >= 30, during_start
    assert total > during_start


def test_a_forked_child_gets_forked_errors_and_community(tmp_path: Path, server: LicenseServer) -> None:
    token = server.cli("mint", "--tier", "pro", "--sub", "org-fork", "--days", "30")
    lic4es.init({"key": token, "public-keys": server.jwks, "cache-dir": str(tmp_path)})
    assert lic4es.current_tier() is lic4es.Tier.PRO
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's exit hooks
        code = 0
        try:
            try:
                lic4es.status()
                code = 10
            except lic4es.LicenseError as e:
                code = 0 if e.code is lic4es.Code.FORKED else 11
            if lic4es.current_tier() is not lic4es.Tier.COMMUNITY:
                code = 12
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == bytes([0]), got
    assert lic4es.current_tier() is lic4es.Tier.PRO, "the parent's engine is untouched"
