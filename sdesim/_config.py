"""Turn sdesim's frozen dataclasses into plain data (dicts, lists, numbers, strings) for ``Trajectories.meta``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch


def to_plain(obj: Any) -> Any:
    """Plain-data view of ``obj``: dataclasses become ``{"type": name, field: value, ...}``; objects with a
    ``to_config()`` method (networks) give that."""
    if hasattr(obj, "to_config") and not isinstance(obj, type):
        return to_plain(obj.to_config())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if f.init and f.repr:
                out[f.name] = to_plain(getattr(obj, f.name))
        return out
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


class TensorCache:
    """Per-(dtype, device) copies of a constant array, built once; used by the frozen dataclasses."""

    __slots__ = ("_array", "_cache")

    def __init__(self, array: np.ndarray):
        self._array = array
        self._cache: dict = {}

    def get(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, device)
        t = self._cache.get(key)
        if t is None:
            t = torch.tensor(self._array, dtype=dtype, device=device)
            self._cache[key] = t
        return t
