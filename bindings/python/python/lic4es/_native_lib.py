"""Loads liblic4es and declares the C API's signatures (ctypes, no compiled extension).

The library is the one the wheel carries (``_native/lib_native.so``, soname
``liblic4es.so.0``); ``LIC4ES_LIBRARY`` names another file to load instead, such as an
installed ``/usr/lib/liblic4es.so.0``.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Callable, TypeVar

T = TypeVar("T")

# The base of C integer types (ctypes.c_int's own); generic only to the type checker.
if TYPE_CHECKING:
    _IntBase = ctypes._SimpleCData[int]
else:
    _IntBase = ctypes._SimpleCData

LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


def _path() -> str:
    override = os.environ.get("LIC4ES_LIBRARY", "").strip()
    if override:
        return override
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native", "lib_native.so")


# Calls that only touch atomics: made without releasing the GIL (ctypes.PyDLL); a ctypes
# no-op releasing it measured 1.4-1.7x one keeping it. Everything else may wait (on the network, on a lock the engine's
# thread holds while it logs through Python) and releases the GIL (ctypes.CDLL).
_ATOMIC = ("lic_current_tier", "lic_counter_add", "lic_gauge_set", "lic_version")


def _load() -> ctypes.CDLL:
    path = _path()
    try:
        lib = ctypes.CDLL(path)
        atomic = ctypes.PyDLL(path)
    except OSError as e:
        raise ImportError(f"lic4es: cannot load the engine library {path}: {e}") from e
    size_p = ctypes.POINTER(ctypes.c_size_t)
    sigs: dict[str, tuple[object, list[object]]] = {
        "lic_init": (ctypes.c_int, [ctypes.c_char_p]),
        "lic_current_tier": (ctypes.c_int, []),
        "lic_shutdown": (ctypes.c_int, []),
        "lic_status_json": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, size_p]),
        "lic_last_error": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, size_p]),
        "lic_quota": (ctypes.c_int64, [ctypes.c_char_p]),
        "lic_has_feature": (ctypes.c_bool, [ctypes.c_char_p]),
        "lic_counter_add": (None, [ctypes.c_uint32, ctypes.c_uint64]),
        "lic_gauge_set": (None, [ctypes.c_uint32, ctypes.c_uint64]),
        "lic_refresh_now": (ctypes.c_int, []),
        "lic_borrow": (ctypes.c_int, [ctypes.c_uint64]),
        "lic_return_borrow": (ctypes.c_int, []),
        "lic_set_log_callback": (ctypes.c_int, [LOG_FN, ctypes.c_void_p]),
        "lic_version": (ctypes.c_char_p, []),
    }
    for name, (restype, argtypes) in sigs.items():
        f = getattr(atomic if name in _ATOMIC else lib, name)
        f.restype = restype
        f.argtypes = argtypes
        setattr(lib, name, f)
    return lib


LIB = _load()
PATH = _path()


def tier_reader(convert: Callable[[int], T]) -> Callable[[], T]:
    """``lic_current_tier`` as a foreign function whose result ctypes hands to ``convert``
    itself, so a call from Python runs no Python frame.

    The result type is a plain C ``int`` type with a ``_check_retval_`` hook, the pattern of
    the standard library's own ``ctypes.HRESULT``: ctypes reads the ``int`` as it does for
    ``c_int`` and passes it to the hook in one vectorcall. A callable ``restype`` would
    instead build an argument tuple on every call (measured 1.4-1.5x the no-op call against
    1.2-1.3x here; see tests/test_cost.py)."""

    class _Result(_IntBase):
        _type_ = "i"
        _check_retval_ = convert

    f = ctypes.PyDLL(PATH)["lic_current_tier"]
    f.argtypes = []
    f.restype = _Result
    reader: Callable[[], T] = f
    return reader
