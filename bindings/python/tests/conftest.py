"""Real license-server processes on loopback for the binding's tests.

``LIC4ES_SERVER`` names the license-server binary (the Rust test that runs this suite
passes the one cargo built).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

HERE = Path(__file__).resolve().parent
ADMIN = "python-test-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LicenseServer:
    """One license-server with its own data dir, started and stopped by the test."""

    def __init__(self, work: Path) -> None:
        binary = os.environ.get("LIC4ES_SERVER")
        if not binary:
            pytest.fail("LIC4ES_SERVER must name the license-server binary")
        self.binary = binary
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = work / "server.toml"
        self.config.write_text(
            f'listen = "127.0.0.1:{self.port}"\n'
            f'data-dir = "{work / "data"}"\n'
            f'admin-token = "{ADMIN}"\n'
            'metrics-listen = "127.0.0.1:0"\n'
        )
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.jwks = json.loads(self.cli("keygen"))

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [self.binary, "--config", str(self.config), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def start(self) -> None:
        log = open(self.work / "server.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--config", str(self.config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise AssertionError(f"license-server did not start: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def log(self) -> str:
        p = self.work / "server.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def admin(self, path: str) -> Any:
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def online_sessions(self, license_id: str) -> list[Any]:
        sessions = self.admin(f"/admin/sessions?license={license_id}")
        return [s for s in sessions if s.get("mode") == "online"]

    def api_key(self, tier: str, sub: str, *extra: str) -> str:
        return self.cli("api-key", "create", "--tier", tier, "--sub", sub, "--days", "30", *extra)

    def host_config(self, cache: Path, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "api-url": self.url,
            "public-keys": self.jwks,
            "cache-dir": str(cache),
            "connect-timeout": "1s",
            "read-timeout": "2s",
        }
        cfg.update(extra)
        return cfg


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LicenseServer]:
    s = LicenseServer(tmp_path / "server")
    s.start()
    try:
        yield s
    finally:
        s.stop()


class Host:
    """A Python process holding an engine (``holder.py``): asks it for its status, tells it
    to exit normally, or signals it."""

    def __init__(self, config: dict[str, Any], *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "holder.py"), json.dumps(config), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.first = self._line()

    def _line(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"host exited: {self.stderr()}")
        return json.loads(line)

    def status(self) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        return self._line()

    def exit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)

    def stderr(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Polls ``check()`` until it returns something true; the last value on failure."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
