"""Shared pieces of the figure scripts: claims, cached results, saving figures."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Claim:
    """A numerical claim a figure tests: its statement, whether the run supports it, and the numbers.

    ``required=False`` marks a finding that is reported whichever way it goes (e.g. agreement under real minibatch
    noise, which the issue asks to report honestly): it does not make a ``--quick`` run fail.
    """

    text: str
    passed: bool
    numbers: str
    required: bool = True

    def __post_init__(self):
        object.__setattr__(self, "passed", bool(self.passed))  # numpy booleans are not JSON


def config_hash(module, config) -> str:
    """Hash of the configuration and of the script's source, so a changed script reruns."""
    payload = json.dumps(dataclasses.asdict(config), sort_keys=True, default=repr) + inspect.getsource(module)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def save_results(path: Path, results: dict) -> None:
    """Write a flat dict of numpy arrays and scalars atomically (.npz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in results.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_results(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def band(tr, metric="loss"):
    """(center, lower, upper) of a Trajectories as plain arrays."""
    c, lo, hi = tr.band(metric)
    return np.asarray(c), np.asarray(lo), np.asarray(hi)


def save_figure(fig, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    return paths
