"""Seats held by Python processes on a real license-server: the limit, the release at
interpreter exit (and on SIGTERM made a normal exit), offline with its grace, reconnect."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lic4es
import pytest

from conftest import Host, LicenseServer, wait_for


def seat_config(server: LicenseServer, key: str, cache: Path) -> dict[str, Any]:
    return server.host_config(
        cache, **{"api-key": key, "seat": {"reconnect-interval": "2s"}, "log-level": "info"}
    )


def test_three_processes_on_two_seats_then_exit_offline_and_back(
    server: LicenseServer, tmp_path: Path
) -> None:
    key = server.api_key("team", "org-seats", "--seats", "2", "--heartbeat-interval", "1")
    hosts: list[Host] = []
    try:
        a = Host(seat_config(server, key, tmp_path / "a"))
        b = Host(seat_config(server, key, tmp_path / "b"))
        hosts += [a, b]
        for h in (a, b):
            assert h.first["tier"] == "team" and h.first["seat"]["state"] == "online", h.first
        c = Host(seat_config(server, key, tmp_path / "c"))
        hosts.append(c)
        assert c.first["tier"] == "community", c.first
        assert c.first["seat"]["state"] == "no_seats", c.first
        assert "All seats in use (2/2)" in json.dumps(c.first), c.first
        assert len(server.online_sessions("org-seats")) == 2

        # a exits normally without calling shutdown: its exit hook gives the seat back,
        # and c, retrying within its reconnect interval, takes it.
        assert a.exit() == 0
        wait_for("c to hold the seat", lambda: c.status()["tier"] == "team")
        assert len(server.online_sessions("org-seats")) == 2

        # The server goes away: after the heartbeat failures c is offline, in its grace.
        server.stop()
        st = wait_for(
            "c offline", lambda: (s := c.status())["seat"]["state"] == "offline" and s
        )
        assert st["tier"] == "team" and st["seat"]["grace_until"], st
        server.start()
        wait_for("c online again", lambda: c.status()["seat"]["state"] == "online")
        assert c.exit() == 0
        assert b.exit() == 0
        wait_for("every seat given back", lambda: server.online_sessions("org-seats") == [])
    finally:
        for h in hosts:
            h.kill()


def test_sigterm_made_a_normal_exit_gives_the_seat_back(
    server: LicenseServer, tmp_path: Path
) -> None:
    key = server.api_key("team", "org-term", "--seats", "1")
    h = Host(seat_config(server, key, tmp_path / "h"), "--sigterm-exits")
    try:
        assert h.first["seat"]["state"] == "online", h.first
        assert len(server.online_sessions("org-term")) == 1
        h.proc.send_signal(signal.SIGTERM)
        assert h.proc.wait(timeout=30) == 143
        assert server.online_sessions("org-term") == []
    finally:
        h.kill()


def test_a_host_that_never_shuts_down_exits_cleanly_either_way(
    server: LicenseServer, tmp_path: Path
) -> None:
    key = server.api_key("team", "org-exit", "--seats", "2", "--heartbeat-interval", "1")
    config = json.dumps(seat_config(server, key, tmp_path / "x"))
    program = (
        "import json, sys, lic4es\n"
        "lic4es.init(json.loads(sys.argv[1]), release_at_exit=sys.argv[2] == 'release')\n"
        "print(lic4es.current_tier().name)\n"
    )
    for mode, left in (("release", 0), ("keep", 1)):
        out = subprocess.run(
            [sys.executable, "-c", program, config, mode],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "TEAM", out
        assert "Traceback" not in out.stderr and "Fatal" not in out.stderr, out.stderr
        assert len(server.online_sessions("org-exit")) == left, mode


def test_the_coditect_example_holds_a_seat_while_its_command_runs(
    server: LicenseServer, tmp_path: Path
) -> None:
    example = Path(__file__).resolve().parents[3] / "examples/python/coditect_cli.py"
    key = server.api_key("team", "org-cli", "--seats", "1")
    config = tmp_path / "host.json"
    config.write_text(json.dumps(seat_config(server, key, tmp_path / "cli")))
    out = subprocess.run(
        [sys.executable, str(example), "--config", str(config), "run", "--", sys.executable,
         "-c", f"import urllib.request as u; print(len(__import__('json').loads(u.urlopen("
               f"u.Request('{server.url}/admin/sessions?license=org-cli', headers={{"
               f"'Authorization': 'Bearer {server_admin()}'}})).read())))"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # The command saw the seat held; after the CLI exited it is free again.
    assert out.stdout.splitlines() == ["license: Team - online", "1"], out.stdout
    assert server.online_sessions("org-cli") == []
    status = subprocess.run(
        [sys.executable, str(example), "--config", str(config), "status"],
        capture_output=True, text=True, timeout=60,
    )
    assert status.returncode == 0 and "Team - online" in status.stdout, status


def server_admin() -> str:
    from conftest import ADMIN

    return ADMIN


def test_a_borrowed_seat_holds_without_the_server_and_goes_back(
    server: LicenseServer, tmp_path: Path
) -> None:
    key = server.api_key("team", "org-trip", "--seats", "1", "--max-borrow", "1h")
    lic4es.init(seat_config(server, key, tmp_path / "trip"))
    try:
        assert lic4es.status()["seat"]["state"] == "online"
        with pytest.raises(ValueError):
            lic4es.borrow(0)
        lic4es.borrow(600)
        st = lic4es.status()
        assert st["mode"] == "borrowed" and st["tier"] == "team", st
        assert st["seat"]["borrowed_until"], st
        sessions = server.online_sessions("org-trip")
        assert [s["session_id"][:4] for s in sessions] == ["bor-"], sessions
        # Nothing to refresh while borrowed, and the tier holds with the server gone.
        server.stop()
        lic4es.refresh_now()
        assert lic4es.current_tier() is lic4es.Tier.TEAM
        with pytest.raises(lic4es.LicenseError) as away:
            lic4es.return_borrow()
        assert away.value.code is lic4es.Code.REFRESH_FAILED
        assert lic4es.status()["mode"] == "borrowed"
        server.start()
        lic4es.return_borrow()
        st = lic4es.status()
        assert st["seat"]["state"] == "online", st
        with pytest.raises(lic4es.LicenseError) as none:
            lic4es.return_borrow()
        assert none.value.code is lic4es.Code.UNSUPPORTED
    finally:
        lic4es.shutdown()
    assert server.online_sessions("org-trip") == []
