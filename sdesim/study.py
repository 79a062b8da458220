r"""Run a study (``sdesim run``) and sweeps of studies (``sdesim sweep``) on any ``concurrent.futures.Executor``.

A sweep expands the grid of its ``[sweep]`` table into settings, runs each as a study, and stores one JSON result per
setting, named by a hash of the setting's configuration and written atomically (temporary file, then rename). Run it
again after an interruption and it skips every setting whose result exists; a setting that raised is recorded with
its traceback (status ``"failed"``) while the others go on, and is retried only with ``retry_failed=True``. The
executor is local processes by default; pass a ``dask.distributed`` client's executor (``client.get_executor()``)
to run on a cluster. One sweep at a time may use a results folder.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from . import config as _config
from ._progress import Progress


def _write_json(path: Path, payload: dict) -> None:
    """Atomic write: a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=1, allow_nan=True, default=repr)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def run_study(config: dict, out: str | os.PathLike | None = None, *, progress: bool = False,
              save_trajectories: bool = True) -> dict:
    """Run one validated study (:func:`sdesim.config.load`): the optimizer, its SDE, the comparison and the figure.

    Writes ``discrete.npz``, ``sde.npz``, ``summary.json`` and ``comparison.png`` (unless ``[output] figure = false``)
    into ``out`` (default ``[output] dir``) and returns the summary as a dict.
    """
    from . import _runs
    from ._compare import compare
    from .distributed import run_distributed

    method, objective, noise, x0 = _config.build_parts(config)
    run, disc, sde = config["run"], config["discrete"], config["sde"]
    out = Path(out if out is not None else config["output"]["dir"])
    common = dict(steps=run["steps"], record_every=run["record_every"],
                  divergence_threshold=run["divergence_threshold"], progress=progress)
    started = time.perf_counter()
    if disc["backend"] == "distributed":
        d = run_distributed(method, objective, noise, x0, runs=disc["runs"], seed=run["seed"],
                            timeout=disc["timeout"], **common)
    elif disc["backend"] == "in_process":
        d = _runs.run_discrete(method, objective, noise, x0, runs=disc["runs"], seed=run["seed"], **common)
    else:
        raise _config.ConfigError(f"discrete.backend: must be 'in_process' or 'distributed', got {disc['backend']!r}")
    summary: dict[str, Any] = {
        "discrete_final": _finite(d.center()[-1]), "discrete_diverged": d.diverged_share,
        "statistic": d.statistic,
    }
    if "distributed" in d.meta:
        summary["bytes_per_step_per_rank"] = d.meta["distributed"]["bytes_per_step_per_run"][0]
        summary["fp32_allreduce_bytes"] = d.meta["distributed"]["fp32_allreduce_bytes"]
    s = None
    if sde["enabled"]:
        s = _runs.simulate(method, objective, noise, x0, paths=sde["paths"] or disc["runs"], seed=run["seed"] + 1,
                           model=sde["model"], solver=sde["solver"], substeps=sde["substeps"], **common)
        c = compare(d, s)
        summary.update(sde_final=_finite(s.center()[-1]), sde_diverged=s.diverged_share,
                       weak_error=_finite(c.weak_error), weak_error_t=_finite(c.weak_error_t),
                       ci_overlap=c.ci_overlap, max_z=_finite(c.max_z), p_value=_finite(c.p_value),
                       statistic=c.statistic)
    summary["seconds"] = time.perf_counter() - started
    if save_trajectories:
        out.mkdir(parents=True, exist_ok=True)
        d.save(out / "discrete.npz")
        if s is not None:
            s.save(out / "sde.npz")
        if s is not None and config["output"]["figure"]:
            from .plotting import save_comparison

            save_comparison(c, out / "comparison.png")
        _write_json(out / "summary.json", {"summary": summary, "config": config})
    return summary


# -- sweeps ------------------------------------------------------------------------------------------------------
def grid(config: dict) -> list[dict[str, Any]]:
    """The settings of a sweep: one dict of dotted field → value per point of the grid, in a stable order."""
    fields = list(config.get("sweep", {}))
    if not fields:
        return [{}]
    return [dict(zip(fields, values)) for values in itertools.product(*(config["sweep"][f] for f in fields))]


def setting_key(config: dict) -> str:
    """Hash of a setting's configuration (what it computes, not where it writes): names its result file."""
    return hashlib.sha256(_config.canonical(config).encode()).hexdigest()[:16]


def _run_setting(config: dict, overrides: dict, key: str, path: str, save_trajectories: bool) -> dict:
    """Run one setting and write its record atomically; a failure is recorded with its traceback, not raised."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("SDESIM_SWEEP_THREADS", "1"))))
    record: dict[str, Any] = {"key": key, "overrides": overrides, "config": config}
    started = time.perf_counter()
    try:
        folder = Path(path).with_suffix("")
        record["summary"] = run_study(config, folder, save_trajectories=save_trajectories)
        record["status"] = "ok"
    except Exception as err:  # recorded, so that the other settings go on
        record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record["seconds"] = time.perf_counter() - started
    _write_json(Path(path), record)
    return record


def _default_executor(max_workers: int | None) -> cf.Executor:
    workers = max_workers or max(1, min(os.cpu_count() or 1, 4))
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def sweep(config: dict, *, executor: cf.Executor | None = None, out: str | os.PathLike | None = None,
          max_workers: int | None = None, retry_failed: bool = False, save_trajectories: bool = False,
          progress: bool = True):
    """Run every setting of ``config``'s ``[sweep]`` grid and return one row per setting as a pandas DataFrame.

    Args:
        config: a validated study (:func:`sdesim.config.load`) with a ``[sweep]`` table.
        executor: any ``concurrent.futures.Executor`` (default: a process pool of ``max_workers`` spawned
            processes); for a cluster, ``dask.distributed.Client(...).get_executor()``.
        out: results folder (default ``[output] dir``/sweep); one ``<key>.json`` per setting.
        max_workers: size of the default process pool.
        retry_failed: run settings again whose stored record says ``"failed"``.
        save_trajectories: also keep each setting's trajectories and figure in ``<key>/``.
        progress: progress bar on stderr.

    Returns:
        DataFrame with columns ``key``, ``status``, the swept fields, the summary numbers, ``error``.
    """
    folder = Path(out if out is not None else Path(config["output"]["dir"]) / "sweep")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.json.*"):  # temporary files of writes cut short by a kill; never a result
        stale.unlink(missing_ok=True)
    settings = []
    for overrides in grid(config):
        cfg = _config.with_overrides(config, overrides)
        key = setting_key(cfg)
        settings.append((key, overrides, cfg))
    keys = [k for k, _, _ in settings]
    if len(set(keys)) != len(keys):
        raise ValueError("sweep: two settings of the grid are identical (a field is listed twice?)")
    pending = []
    for key, overrides, cfg in settings:
        path = folder / f"{key}.json"
        if path.exists():
            try:
                status = json.loads(path.read_text()).get("status")
            except (json.JSONDecodeError, OSError):
                status = None
            if status == "ok" or (status == "failed" and not retry_failed):
                continue
        pending.append((key, overrides, cfg, str(path)))
    bar = Progress(len(pending), f"sweep ({len(settings) - len(pending)} of {len(settings)} done before)",
                   progress and bool(pending))
    own = executor is None and bool(pending)
    pool = _default_executor(max_workers) if own else executor
    try:
        futures = {pool.submit(_run_setting, cfg, ov, key, path, save_trajectories): (key, ov, cfg, path)
                   for key, ov, cfg, path in pending}
        for done, fut in enumerate(cf.as_completed(futures), 1):
            key, ov, cfg, path = futures[fut]
            try:
                fut.result()
            except Exception as err:  # the worker itself died (e.g. out of memory): record that
                _write_json(Path(path), {"key": key, "overrides": ov, "config": cfg, "status": "failed",
                                         "error": f"{type(err).__name__}: {err}",
                                         "traceback": traceback.format_exc()})
            bar.update(done)
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return results(config, out=folder)


def results(config: dict, *, out: str | os.PathLike | None = None):
    """The stored records of a sweep's settings as a DataFrame (settings without a record have status "missing")."""
    import pandas as pd

    folder = Path(out if out is not None else Path(config["output"]["dir"]) / "sweep")
    rows = []
    for overrides in grid(config):
        key = setting_key(_config.with_overrides(config, overrides))
        path = folder / f"{key}.json"
        row: dict[str, Any] = {"key": key, **overrides}
        if path.exists():
            rec = json.loads(path.read_text())
            row["status"] = rec["status"]
            row.update(rec.get("summary", {}))
            row["error"] = rec.get("error")
        else:
            row["status"] = "missing"
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["run_study", "sweep", "results", "grid", "setting_key"]
