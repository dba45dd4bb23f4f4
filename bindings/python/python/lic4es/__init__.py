"""lic4es for Python: the licensing engine through its C API.

::

    import lic4es

    with lic4es.Engine({"api-key": "...", "public-keys": [...]}) as engine:
        if engine.current_tier() >= lic4es.Tier.PRO:
            ...

The engine is process-wide: one engine runs at a time (``Engine`` or ``init`` /
``shutdown``). Every function is safe from any thread; none holds the GIL while the
library works, and none blocks longer than the C call it wraps (``init``, ``shutdown``
and ``refresh_now`` may wait on the network, bounded by the config's timeouts: use
``init_async``, ``refresh_now_async`` or ``async with Engine(...)`` from asyncio code).

Log records go to the ``logging`` logger ``lic4es``, from the engine's own thread too.
At interpreter exit the engine is shut down, which gives a held seat back (bounded by
``seat.release-timeout``); ``release_at_exit=False`` leaves it running instead. Python's
default SIGTERM action ends the process without exit handlers: a program that should give
its seat back on SIGTERM turns it into a normal exit
(``signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))``). In a child made by
``fork()`` every call raises ``LicenseError`` with ``Code.FORKED`` and the tier is
Community: the child starts its own engine after ``exec``.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import threading
from enum import IntEnum
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Type, Union

from ._native_lib import LIB as _lib
from ._native_lib import LOG_FN as _LOG_FN
from ._native_lib import PATH as _PATH
from ._native_lib import tier_reader as _tier_reader

__all__ = [
    "Code",
    "Config",
    "Counter",
    "Engine",
    "Gauge",
    "LicenseError",
    "Tier",
    "add_joins",
    "add_queries",
    "borrow",
    "counter_add",
    "current_tier",
    "gauge_set",
    "has_feature",
    "init",
    "init_async",
    "library_path",
    "quota",
    "refresh_now",
    "refresh_now_async",
    "return_borrow",
    "set_clusters_connected",
    "set_materialized_views_active",
    "shutdown",
    "status",
    "status_json",
    "version",
]

logger = logging.getLogger("lic4es")


class Tier(IntEnum):
    """A license tier; ordered, so ``tier >= Tier.PRO`` reads as it should."""

    COMMUNITY = 0
    PRO = 1
    TEAM = 2
    ENTERPRISE = 3


class Code(IntEnum):
    """The C API's ``lic_result`` codes."""

    OK = 0
    INVALID_ARGUMENT = 1
    CONFIG = 2
    ALREADY_INITIALIZED = 3
    NOT_INITIALIZED = 4
    BUFFER_TOO_SMALL = 5
    REFRESH_FAILED = 6
    UNSUPPORTED = 7
    FORKED = 8
    INTERNAL = 99


class Counter(IntEnum):
    """Usage counters reported in telemetry (``lic_counter``)."""

    QUERIES = 0
    JOINS = 1


class Gauge(IntEnum):
    """Usage gauges reported in telemetry (``lic_gauge``)."""

    MVS_ACTIVE = 0
    CLUSTERS_CONNECTED = 1


class LicenseError(Exception):
    """A failed call: ``code`` is the C API's result, ``message`` says why."""

    code: Code
    message: str

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message


Config = Union[Mapping[str, Any], str]
"""A config: the ``softclient4es.license`` keys as a mapping, or that object as JSON."""

# Keyed by the C tier: a lookup costs a fraction of constructing the enum.
_TIERS = {t.value: t for t in Tier}
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
_SIZE = ctypes.c_size_t
_BUF = 4096


def _code(value: int) -> Code:
    try:
        return Code(value)
    except ValueError:
        return Code.INTERNAL


def _read(fn: Callable[[Optional[ctypes.Array[ctypes.c_char]], int, Any], int]) -> tuple[int, str]:
    """Calls a ``(buf, len, out_len)`` function, growing the buffer when it is too small."""
    size = _BUF
    for _ in range(4):
        buf = ctypes.create_string_buffer(size)
        n = _SIZE(0)
        r = fn(buf, size, ctypes.byref(n))
        if r == Code.BUFFER_TOO_SMALL and n.value > size:
            size = n.value
            continue
        if r != Code.OK:
            return r, ""
        return r, buf.raw[: n.value].decode("utf-8", "replace")
    return Code.BUFFER_TOO_SMALL, ""


def _last_error() -> str:
    r, text = _read(_lib.lic_last_error)
    return text if r == Code.OK else ""


def _check(result: int) -> None:
    if result != Code.OK:
        # lic_last_error is per thread, and ctypes calls run on the caller's thread.
        raise LicenseError(_code(result), _last_error())


def _c_string(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    data = value.encode("utf-8", "surrogatepass")
    if b"\0" in data:
        raise LicenseError(Code.INVALID_ARGUMENT, f"{what} contains a NUL character")
    return data


def _config_bytes(config: Config) -> bytes:
    if isinstance(config, str):
        text = config
    elif isinstance(config, Mapping):
        text = json.dumps(dict(config))
    else:
        raise TypeError(f"config must be a mapping or a JSON string, not {type(config).__name__}")
    return _c_string(text, "config")


def _on_log(_user: Optional[int], level: int, message: Optional[bytes]) -> None:
    try:
        text = (message or b"").decode("utf-8", "replace")
        logger.log(_LEVELS[level] if 0 <= level < len(_LEVELS) else logging.ERROR, "%s", text)
    except BaseException:  # noqa: BLE001 - a failing handler must not reach the engine
        pass


# Kept alive for as long as the library may call it.
_LOG_CALLBACK = _LOG_FN(_on_log)
_lock = threading.Lock()
_bridged = False
_exit_hook = False
_release_at_exit = True


def _bridge_logging() -> None:
    global _bridged
    with _lock:
        if not _bridged:
            _check(_lib.lic_set_log_callback(_LOG_CALLBACK, None))
            _bridged = True


def _at_exit() -> None:
    # Runs before the interpreter is torn down, while logging still works (its own exit
    # hook was registered before this one and runs after it).
    global _bridged
    if _release_at_exit:
        _lib.lic_shutdown()
    if _bridged:
        # Returns once no record is being delivered: after it, the engine's thread (when
        # it keeps running) never enters Python again, so never during finalization.
        _lib.lic_set_log_callback(_LOG_FN(), None)
        _bridged = False


def init(config: Config, *, release_at_exit: bool = True) -> None:
    """Starts the engine: parses the config, resolves the license (before returning: a
    token fetch or a seat acquire is done by then) and starts its background thread.

    A missing, invalid or expired license is not an error: the tier is Community and
    ``status()`` says why. Raises ``LicenseError`` with ``Code.CONFIG`` naming a bad key,
    ``Code.ALREADY_INITIALIZED`` when an engine runs, ``Code.FORKED`` in a forked child.
    ``release_at_exit=False``: the engine is not shut down at interpreter exit.
    """
    global _exit_hook, _release_at_exit
    data = _config_bytes(config)
    _bridge_logging()
    _check(_lib.lic_init(data))
    with _lock:
        _release_at_exit = release_at_exit
        if not _exit_hook:
            atexit.register(_at_exit)
            _exit_hook = True


async def init_async(config: Config, *, release_at_exit: bool = True) -> None:
    """``init`` on a worker thread, so the event loop runs while the license resolves."""
    import asyncio  # here: importing asyncio would double a CLI's start-up

    await asyncio.to_thread(init, config, release_at_exit=release_at_exit)


current_tier: Callable[[], Tier] = _tier_reader(_TIERS.__getitem__)
current_tier.__doc__ = """current_tier() -> Tier: the tier in effect, one atomic load in the
library, cheap enough per query (no Python frame: the foreign call itself returns the
``Tier``). Community before ``init``, after ``shutdown`` and in a forked child."""


def shutdown() -> bool:
    """Gives a held seat back (bounded by ``seat.release-timeout``), stops the engine and
    joins its thread. Returns False when no engine was running."""
    r = _lib.lic_shutdown()
    if r == Code.NOT_INITIALIZED:
        return False
    _check(r)
    return True


def status_json() -> str:
    """The status document as JSON (tier, source, status, grace, seat, ...)."""
    r, text = _read(_lib.lic_status_json)
    _check(r)
    return text


def status() -> dict[str, Any]:
    """The status document: ``status()["seat"]["state"]`` is ``online``, ``offline``,
    ``degraded``... and ``status()["seat"]["grace_until"]`` the end of an offline grace."""
    doc: dict[str, Any] = json.loads(status_json())
    return doc


def quota(name: str) -> int:
    """A quota of the license in effect; -1 when unlimited or not set by the license."""
    return int(_lib.lic_quota(_c_string(name, "quota name")))


def has_feature(name: str) -> bool:
    """Whether the license in effect grants a feature."""
    return bool(_lib.lic_has_feature(_c_string(name, "feature name")))


def _u64(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be int")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{what} must be in 0..2**64-1, not {value}")
    return value


def counter_add(counter: Counter, n: int = 1) -> None:
    """Adds ``n`` to a usage counter (works before ``init``; process-wide)."""
    _lib.lic_counter_add(int(counter), _u64(n, "n"))


def gauge_set(gauge: Gauge, value: int) -> None:
    """Sets a usage gauge (works before ``init``; process-wide)."""
    _lib.lic_gauge_set(int(gauge), _u64(value, "value"))


def add_queries(n: int = 1) -> None:
    """Counts ``n`` queries."""
    counter_add(Counter.QUERIES, n)


def add_joins(n: int = 1) -> None:
    """Counts ``n`` joins."""
    counter_add(Counter.JOINS, n)


def set_materialized_views_active(value: int) -> None:
    """The number of materialized views active now."""
    gauge_set(Gauge.MVS_ACTIVE, value)


def set_clusters_connected(value: int) -> None:
    """The number of clusters connected now."""
    gauge_set(Gauge.CLUSTERS_CONNECTED, value)


def refresh_now() -> None:
    """Refreshes the license from the backend now (``REFRESH LICENSE``). Raises
    ``LicenseError`` with ``Code.REFRESH_FAILED`` or ``Code.UNSUPPORTED``."""
    _check(_lib.lic_refresh_now())


async def refresh_now_async() -> None:
    """``refresh_now`` on a worker thread, for asyncio code."""
    import asyncio

    await asyncio.to_thread(refresh_now)


def borrow(seconds: int) -> None:
    """Checks the online seat out for ``seconds`` (at most the license's ``max-borrow``),
    waiting for the answer: the tier then holds without heartbeats until the borrow ends,
    across restarts, and the license server counts the seat meanwhile. Raises
    ``LicenseError`` with ``Code.UNSUPPORTED`` when no online seat is held, or
    ``Code.REFRESH_FAILED`` when the server could not be reached or refused."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise ValueError(f"seconds must be a whole number of at least 1, not {seconds!r}")
    _check(_lib.lic_borrow(min(seconds, 2**64 - 1)))


def return_borrow() -> None:
    """Gives a borrowed seat back before its end and acquires a seat again. Raises
    ``LicenseError`` with ``Code.UNSUPPORTED`` when no seat is borrowed, or
    ``Code.REFRESH_FAILED`` when the server could not be reached (the borrow holds)."""
    _check(_lib.lic_return_borrow())


def version() -> str:
    """The library's version."""
    v: Optional[bytes] = _lib.lic_version()
    return (v or b"").decode("ascii", "replace")


def library_path() -> str:
    """The file the engine library was loaded from."""
    return _PATH


class Engine:
    """A started engine for a ``with`` block: ``init`` on enter, ``shutdown`` on exit
    (also when the block raises). ``async with`` does both on a worker thread."""

    def __init__(self, config: Config, *, release_at_exit: bool = True) -> None:
        self._config = config
        self._release_at_exit = release_at_exit
        self._running = False

    def start(self) -> Engine:
        """Starts the engine (as ``init``) and returns this handle."""
        init(self._config, release_at_exit=self._release_at_exit)
        self._running = True
        return self

    def close(self) -> None:
        """Shuts the engine down (once)."""
        if self._running:
            self._running = False
            shutdown()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    async def __aenter__(self) -> Engine:
        import asyncio

        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.close)

    @staticmethod
    def current_tier() -> Tier:
        """As the module's ``current_tier``."""
        return current_tier()

    @staticmethod
    def status() -> dict[str, Any]:
        """As the module's ``status``."""
        return status()

    @staticmethod
    def quota(name: str) -> int:
        """As the module's ``quota``."""
        return quota(name)

    @staticmethod
    def has_feature(name: str) -> bool:
        """As the module's ``has_feature``."""
        return has_feature(name)

    @staticmethod
    def refresh_now() -> None:
        """As the module's ``refresh_now``."""
        refresh_now()

    @staticmethod
    def borrow(seconds: int) -> None:
        """As the module's ``borrow``."""
        borrow(seconds)

    @staticmethod
    def return_borrow() -> None:
        """As the module's ``return_borrow``."""
        return_borrow()
