"""Argument checks shared by every constructor.

Each check raises ``ValueError`` whose message names the parameter, the value received and what is allowed, as
DESIGN.md ("Bad input and failure") asks. Private: the helpers may change without notice.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np


class NoSDEError(ValueError):
    """Raised when a method/noise/compressor combination has no SDE that sdesim can integrate.

    It is a ``ValueError`` so that callers who catch bad input catch it too; the message says why and what to use
    instead.
    """


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {_fmt(value)}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {_fmt(value)}")
    return value


def in_interval(name: str, value: Any, lo: float, hi: float, *, lo_open: bool, hi_open: bool) -> float:
    """A real number inside the interval given by ``lo``, ``hi`` and the openness flags."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {_fmt(value)}")
    value = float(value)
    above = value > lo if lo_open else value >= lo
    below = value < hi if hi_open else value <= hi
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {_fmt(value)}")
    return value


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_fmt(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def real_array(name: str, value: Any, *, min_value: float | None = None, strict: bool = False,
               max_ndim: int = 2) -> np.ndarray:
    """A finite float64 array (scalar, vector or matrix), read-only, optionally bounded below."""
    try:
        arr = np.array(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array, got {_fmt(value)}") from None
    if arr.ndim > max_ndim:
        raise ValueError(f"{name} must have at most {max_ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_fmt(value)}")
    if min_value is not None:
        bad = arr <= min_value if strict else arr < min_value
        if np.any(bad):
            bound = f"> {min_value:g}" if strict else f">= {min_value:g}"
            raise ValueError(f"{name} must be {bound} everywhere, got {_fmt(value)}")
    arr.setflags(write=False)
    return arr


def lookup(registry: Mapping[str, Any], name: str, what: str) -> Any:
    """``registry[name]`` with a helpful error: close matches and the allowed names."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a name (str), got {_fmt(name)}")
    key = name.lower()
    if key in registry:
        return registry[key]
    close = difflib.get_close_matches(key, list(registry), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown {what} {name!r}{hint} Allowed: {', '.join(sorted(registry))}")


def one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """A string from ``allowed``, with close-match suggestions otherwise."""
    return lookup({a: a for a in allowed}, value, name)
