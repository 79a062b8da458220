r"""Real multi-process runs: every agent of a method is a process, compressed payloads cross process boundaries.

:func:`run_distributed` launches ``n_agents`` processes (gloo on CPU, nccl on GPUs), each an agent of the method:
it computes the full-batch gradient of the objective at the shared point, adds *its own* noise draw (or draws its
own minibatch), compresses with its own randomness, exchanges the payload (:mod:`sdesim.comm`), and applies the
aggregate. Rank 0 records the same :class:`~sdesim.Trajectories` as :func:`sdesim.run_discrete`; the meta data hold
the bytes each rank sent per step. The random numbers are drawn exactly as :func:`sdesim.run_discrete` draws them for
agent ``rank``, so the two agree to rounding for the same seed.

The ranks also run under ``torchrun``::

    torchrun --nproc-per-node 4 -m sdesim.distributed study.toml

Failure: a rank that dies makes the collectives of the others fail (gloo reports the closed connection; every
collective also has the process group's ``timeout``); the launcher stops the remaining ranks after ``grace`` seconds
and raises :class:`DistributedError` naming the rank that failed first.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import math
import os
import pickle
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from . import _checks, _rng
from ._progress import Progress
from ._runs import _assemble, _check_dims, _initial, _meta, _metric_names, _record, _statistic, _update
from ._solve import _mark_divergence
from .comm import Aggregator, fp32_allreduce_bytes
from .models import check_parts
from .noise import Minibatch


class DistributedError(RuntimeError):
    """A rank of a multi-process run failed; the message names it and how every rank ended.

    Attributes:
        exit_codes: exit status of every rank (negative: killed by that signal), when raised by :func:`launch`.
    """

    exit_codes: list | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_gradients(noise, g, n_agents, rank, stream, x, objective):
    """This rank's noisy gradients ``(runs, d)``: agent ``rank``'s share of the draws of :func:`run_discrete`."""
    if isinstance(noise, Minibatch):
        runs = g.shape[0]
        idx = noise.indices(runs * n_agents, objective.n, stream, g.device).reshape(runs, n_agents, -1)[:, rank]
        mg = objective.minibatch_grad(x, idx)
        return g + (mg - g)
    return g + noise.sample(g, n_agents, stream, x=x, objective=objective)[:, rank]


def agent_loop(method, objective, noise, x0, *, steps: int, runs: int, seed: int, record_every: int = 1,
               divergence_threshold: float = math.inf, progress: bool = False, _kill=None):
    """The loop every rank runs inside an initialized process group; rank 0 returns the Trajectories.

    Mirrors :func:`sdesim.run_discrete` step for step (MATH.md §5): same streams, same order of draws, the
    aggregate (1/N) Σ_i C_i(g_i) formed from payloads received from the other ranks.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != method.n_agents:
        raise ValueError(f"n_agents must equal the number of processes: method has n_agents={method.n_agents}, "
                         f"the process group has {world}")
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":  # one GPU per rank
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
        if hasattr(objective, "to"):
            objective = objective.to(device)
    x = _initial(x0, runs, "runs", objective, None, device)
    d = _check_dims(method, objective, noise, x)
    rng = _rng.streams(seed, ["noise"], x.device)
    agg = Aggregator(method.compressors, seed=seed, match_simulation=True, device=x.device)
    threshold = float(divergence_threshold)
    metrics = _metric_names(objective)
    out = []
    bar = Progress(steps, f"rank {rank}", progress and rank == 0)
    with torch.no_grad():
        for k in range(steps):
            if _kill is not None and _kill == (rank, k):
                os.kill(os.getpid(), signal.SIGKILL)
            if k % record_every == 0:
                x = _mark_divergence(x, threshold)
            g = objective.grad(x)
            if k % record_every == 0:
                if rank == 0:
                    out.append(_record(objective, x, g, False, metrics))
                bar.update(k)
            x = _update(method, x, agg(_agent_gradients(noise, g, world, rank, rng["noise"], x, objective)), k)
        if steps % record_every == 0:
            x = _mark_divergence(x, threshold)
            if rank == 0:
                out.append(_record(objective, x, None, False, metrics))
    bar.close()
    # the replicas must agree: compare with rank 0's state, and collect the byte counts
    ref = x.clone()
    dist.broadcast(ref, 0)
    same = torch.tensor([int(torch.equal(torch.nan_to_num(ref), torch.nan_to_num(x)))], device=device)
    sent = torch.tensor([agg.bytes_sent], dtype=torch.int64, device=device)
    flags, counts = [torch.empty_like(same) for _ in range(world)], [torch.empty_like(sent) for _ in range(world)]
    dist.all_gather(flags, same)
    dist.all_gather(counts, sent)
    if not all(int(f) for f in flags):
        raise DistributedError(f"replicas diverged: ranks {[i for i, f in enumerate(flags) if not int(f)]} hold a "
                               "different state than rank 0")
    if rank != 0:
        return None
    per_step = [int(c) / max(steps, 1) / runs for c in counts]
    meta = _meta("discrete", method, objective, noise, x, steps=steps, runs=runs, seed=seed,
                 record_every=record_every, divergence_threshold=threshold,
                 distributed={"backend": dist.get_backend(), "world_size": world,
                              "bytes_per_step_per_run": per_step,
                              "fp32_allreduce_bytes": fp32_allreduce_bytes(d)})
    return _assemble(torch.stack(out), np.arange(0, steps + 1, record_every), method.lr, kind="discrete", meta=meta,
                     statistic=_statistic(method, noise), keep_states=False, metrics=metrics)


def init_from_env(backend: str | None = None, timeout: float | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...);
    without those variables, do nothing. Returns (rank, world size): (0, 1) in a plain single process.
    ``timeout``: seconds a collective may wait for the others (torch's default when ``None``)."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    extra = {} if timeout is None else {"timeout": datetime.timedelta(seconds=float(timeout))}
    dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"), **extra)
    return dist.get_rank(), dist.get_world_size()


@contextlib.contextmanager
def process_group(backend: str | None = None, timeout: float | None = None):
    """``with process_group() as (rank, world):`` joins torchrun's process group for the block (a single process
    without torchrun's variables: (0, 1)), then waits for every rank and leaves the group cleanly.

    Leaving explicitly matters: a process that exits while gloo's connections are still open may abort. After an
    error the group is left as it is (a barrier would wait for ranks that may be gone).
    """
    created = not dist.is_initialized()
    yield init_from_env(backend, timeout)
    if created and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()  # release the process group's C++ objects now, not during interpreter shutdown


def _worker(rank, world, port, backend, timeout, fn, args, kwargs, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
        result = fn(*args, **kwargs)
        if rank == 0:
            tmp = result_path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(result, fh)
            os.replace(tmp, result_path)
        dist.barrier()  # nobody tears down its connections while another rank still uses them
        dist.destroy_process_group()
    except BaseException as err:  # report, then exit non-zero so the launcher sees the failure
        sys.stderr.write(f"sdesim.distributed rank {rank}: {type(err).__name__}: {err}\n")
        if not isinstance(err, (RuntimeError, DistributedError)):
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown, where gloo's threads may abort a finished rank


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def launch(fn, nprocs: int, *args, backend: str = "gloo", timeout: float = 30.0, grace: float = 10.0, **kwargs):
    """Run ``fn(*args, **kwargs)`` in ``nprocs`` fresh processes joined in one process group; return rank 0's result.

    ``fn`` must be importable (a module-level function); its arguments and rank 0's return value must be picklable.

    Args:
        nprocs: number of processes (ranks).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per rank).
        timeout: seconds a collective may wait for the others before it fails.
        grace: seconds the other ranks get to exit on their own after one fails; then they are terminated.

    Raises:
        DistributedError: a rank failed (the message names it and how it ended).
    """
    nprocs = _checks.positive_int("nprocs", nprocs)
    backend = _checks.one_of("backend", backend, ("gloo", "nccl"))
    ctx = mp.get_context("spawn")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sdesim-dist-") as tmp:
        result_path = Path(tmp) / "rank0.pkl"
        procs = [ctx.Process(target=_worker, args=(r, nprocs, port, backend, float(timeout), fn, args, kwargs,
                                                   result_path), daemon=False) for r in range(nprocs)]
        for p in procs:
            p.start()
        first_failure, failed_at = None, None
        try:
            while any(p.is_alive() for p in procs):
                for r, p in enumerate(procs):
                    if first_failure is None and p.exitcode not in (None, 0):
                        first_failure, failed_at = r, time.monotonic()
                if first_failure is not None and time.monotonic() - failed_at > grace:
                    break
                time.sleep(0.05)
        finally:
            stopped = {r for r, p in enumerate(procs) if p.is_alive()}
            for r in stopped:
                procs[r].terminate()
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
        codes = [p.exitcode for p in procs]
        if first_failure is not None or any(c != 0 for c in codes):
            # a rank killed by a signal is the cause; the ones that raised saw its connection close
            signalled = [r for r, c in enumerate(codes) if c is not None and c < 0 and r not in stopped]
            cause = signalled[0] if signalled else (first_failure if first_failure is not None
                                                    else next(r for r, c in enumerate(codes) if c != 0))
            others = ", ".join(f"rank {r}: " + ("stopped by the launcher" if r in stopped else _describe(c))
                               for r, c in enumerate(codes) if r != cause)
            err = DistributedError(f"rank {cause} failed ({_describe(codes[cause])}); the other ranks stopped "
                                   f"({others})")
            err.exit_codes = codes
            raise err
        if not result_path.exists():
            raise DistributedError("rank 0 finished without a result")
        with open(result_path, "rb") as fh:
            return pickle.load(fh)


def run_distributed(method, objective, noise, x0, *, steps: int, runs: int = 1, seed: int, record_every: int = 1,
                    divergence_threshold: float = math.inf, backend: str = "gloo", timeout: float = 30.0,
                    progress: bool = False, _kill=None):
    """Run the optimizer as a real multi-process job: one process per agent (``method.n_agents`` of them).

    Same arguments and result as :func:`sdesim.run_discrete` (on the CPU, in the dtype of ``x0``), plus ``backend`` and
    ``timeout`` of :func:`launch`. ``meta["distributed"]`` holds the backend, the world size, the bytes each rank
    sent per step and run, and the bytes of a float32 all-reduce of the same vector for reference.
    """
    check_parts(method, objective, noise)
    steps = _checks.positive_int("steps", steps, minimum=0)
    runs = _checks.positive_int("runs", runs)
    record_every = _checks.positive_int("record_every", record_every)
    seed = _rng.check_seed(seed)
    x0 = x0.detach().cpu() if isinstance(x0, torch.Tensor) else torch.as_tensor(np.asarray(x0, dtype=np.float64))
    return launch(agent_loop, method.n_agents, method, objective, noise, x0, backend=backend, timeout=timeout,
                  steps=steps, runs=runs, seed=seed, record_every=record_every,
                  divergence_threshold=divergence_threshold, progress=progress, _kill=_kill)


def _torchrun_main(argv=None) -> int:
    """Entry point under ``torchrun``: ``torchrun --nproc-per-node N -m sdesim.distributed CONFIG.toml``.

    Runs the discrete side of the study (``[run]``, ``[discrete] runs``) with one rank per agent and writes
    ``distributed.npz`` into the study's ``[output] dir``.
    """
    from . import config as _config

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: torchrun --nproc-per-node N -m sdesim.distributed CONFIG.toml", file=sys.stderr)
        return 2
    study = _config.load(argv[0])
    method, objective, noise, x0 = _config.build_parts(study)
    run, disc = study["run"], study["discrete"]
    with process_group(timeout=disc["timeout"]):
        traj = agent_loop(method, objective, noise, x0, steps=run["steps"], runs=disc["runs"], seed=run["seed"],
                          record_every=run["record_every"], divergence_threshold=run["divergence_threshold"])
        if traj is not None:
            out = Path(study["output"]["dir"])
            out.mkdir(parents=True, exist_ok=True)
            traj.save(out / "distributed.npz")
            info = traj.meta["distributed"]
            print(f"wrote {out / 'distributed.npz'}: {info['world_size']} ranks ({info['backend']}), "
                  f"{info['bytes_per_step_per_run'][0]:.0f} bytes per step and run per rank "
                  f"(float32 all-reduce: {info['fp32_allreduce_bytes']})")
    return 0


__all__ = ["run_distributed", "launch", "agent_loop", "init_from_env", "process_group", "DistributedError"]

if __name__ == "__main__":
    raise SystemExit(_torchrun_main())
