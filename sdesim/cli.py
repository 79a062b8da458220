"""Command line: ``sdesim list``, ``sdesim compare`` (the main job: optimizer vs SDE, summary and figure),
``sdesim run CONFIG.toml`` and ``sdesim sweep CONFIG.toml`` (studies in TOML, :mod:`sdesim.config`) and
``sdesim figures`` (the figure scripts of a source checkout).

Components are written as Python-like calls with literal keyword arguments, e.g. ``--noise "studentt(nu=3,
sigma=0.5)"`` or ``--objective "quadratic(h=[1, 4])"``; the names are those of ``sdesim list``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from . import _checks


def _registries():
    from . import compressors, methods, models, noise, objectives, schedules
    from ._solve import SOLVERS

    return {
        "objectives": objectives.OBJECTIVES,
        "noise": noise.NOISES,
        "compressors": compressors.COMPRESSORS,
        "methods": methods.METHODS,
        "schedules": schedules.SCHEDULES,
        "models": {k: None for k in models.MODELS},
        "solvers": {k: None for k in SOLVERS},
    }


def parse_component(text: str, registry: dict, what: str):
    """Build ``name(key=literal, ...)`` from ``registry``; a bare ``name`` calls it without arguments."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"--{what}: cannot parse {text!r}; write e.g. name or name(key=value)") from None
    if isinstance(node, ast.Name):
        name, kwargs = node.id, {}
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        name = node.func.id
        try:
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except ValueError:
            raise ValueError(f"--{what}: arguments must be literals (numbers, lists, strings): {text!r}") from None
    else:
        raise ValueError(f"--{what}: write name or name(key=value, ...) with keyword arguments, got {text!r}")
    cls = _checks.lookup(registry, name, what)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"--{what}: {err}") from None


def _cmd_list(args) -> int:
    import inspect

    for group, reg in _registries().items():
        print(f"{group}:")
        for name, cls in reg.items():
            if cls is None:
                print(f"  {name}")
                continue
            sig = str(inspect.signature(cls).replace(return_annotation=inspect.Signature.empty)).replace("'", "")
            doc = (inspect.getdoc(cls) or "").splitlines()[0]
            print(f"  {name}{sig}  {doc}")
    return 0


def _cmd_compare(args) -> int:
    import json

    import torch

    from . import _runs, compare
    from ._compare import Comparison

    regs = _registries()
    objective = parse_component(args.objective, regs["objectives"], "objective")
    noise = parse_component(args.noise, regs["noise"], "noise")
    method_cls = _checks.lookup(regs["methods"], args.method, "method")
    kwargs = dict(lr=args.lr, n_agents=args.agents)
    if args.schedule:
        kwargs["schedule"] = parse_component(args.schedule, regs["schedules"], "schedule")
    if args.compressor:
        kwargs["compressor"] = parse_component(args.compressor, regs["compressors"], "compressor")
    method = method_cls(**kwargs)
    x0 = torch.tensor(args.x0 if args.x0 is not None else [1.0] * (objective.dim or 2), dtype=torch.float64)
    steps, runs = (min(args.steps, 200), min(args.runs, 256)) if args.quick else (args.steps, args.runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(steps=steps, record_every=args.record_every, progress=not args.quiet)
    d = _runs.run_discrete(method, objective, noise, x0, runs=runs, seed=args.seed, **common)
    s = _runs.simulate(method, objective, noise, x0, paths=runs, seed=args.seed + 1, model=args.model,
                       solver=args.solver, substeps=args.substeps, **common)
    c: Comparison = compare(d, s)
    text = c.summary()
    print(text)
    d.save(out / "discrete.npz")
    s.save(out / "sde.npz")
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps({
        "weak_error": c.weak_error, "weak_error_t": c.weak_error_t, "ci_overlap": c.ci_overlap,
        "statistic": c.statistic, "discrete": d.meta, "sde": s.meta}, indent=2))
    from .plotting import save_comparison

    save_comparison(c, out / "comparison.png")
    print(f"wrote {out / 'summary.txt'}, {out / 'comparison.png'}, {out / 'discrete.npz'}, {out / 'sde.npz'}")
    return 0


def _cmd_figures(args) -> int:
    """Run the figure scripts of a source checkout (``python -m experiments``) from the repository root."""
    import subprocess
    from pathlib import Path

    here = Path.cwd().resolve()
    for root in (here, *here.parents):
        if (root / "experiments" / "__main__.py").exists():
            break
    else:
        raise ValueError("sdesim figures runs the figure scripts of a clone of the sdesim repository "
                         "(experiments/); run it inside one")
    cmd = [sys.executable, "-m", "experiments", *args.names] + (["--quick"] if args.quick else []) + (
        ["--force"] if args.force else [])
    return subprocess.call(cmd, cwd=root)


def _cmd_run(args) -> int:
    from . import config, study

    cfg = config.load(args.config)
    summary = study.run_study(cfg, args.out, progress=not args.quiet)
    out = Path(args.out if args.out is not None else cfg["output"]["dir"])
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"wrote {out / 'summary.json'}" + (f", {out / 'comparison.png'}" if (out / "comparison.png").exists()
                                             else ""))
    return 0


def _cmd_sweep(args) -> int:
    from . import config, study

    cfg = config.load(args.config)
    if not cfg["sweep"]:
        raise config.ConfigError(f"{args.config}: sweep: the file has no [sweep] table to expand")
    executor, client = None, None
    if args.dask:
        from dask.distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=args.workers or 2, threads_per_worker=1)) if args.dask == "local" \
            else Client(args.dask)
        executor = client.get_executor()
    try:
        df = study.sweep(cfg, executor=executor, out=args.out, max_workers=args.workers,
                         retry_failed=args.retry_failed, progress=not args.quiet)
    finally:
        if client is not None:
            client.close()
    folder = Path(args.out if args.out is not None else Path(cfg["output"]["dir"]) / "sweep")
    df.to_csv(folder / "results.csv", index=False)
    with __import__("pandas").option_context("display.width", 160, "display.max_columns", 12):
        print(df.drop(columns=["error"]).to_string(index=False))
    failed = int((df["status"] == "failed").sum())
    print(f"{len(df)} settings, {failed} failed; wrote {folder / 'results.csv'}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sdesim", description="SDEs of distributed (compressed, sign) SGD.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list objectives, noise models, compressors, methods, schedules, models, solvers")
    p = sub.add_parser("compare", help="run the optimizer and its SDE, compare them, write summary and figure")
    p.add_argument("--method", default="dcsgd", help="method name (default dcsgd)")
    p.add_argument("--compressor", default="randk(k=1)", help="compressor for dcsgd (default randk(k=1))")
    p.add_argument("--objective", default="quadratic(h=[1.0, 4.0])")
    p.add_argument("--noise", default="gaussian(sigma=0.5)")
    p.add_argument("--schedule", default=None, help="e.g. invsqrt or warmup(steps=100)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--x0", type=float, nargs="+", default=None, help="initial point (default all ones)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--runs", type=int, default=4096, help="runs of the optimizer and paths of the SDE")
    p.add_argument("--record-every", type=int, default=10)
    p.add_argument("--model", default="first_order", help="first_order, second_order or stable")
    p.add_argument("--solver", default="euler")
    p.add_argument("--substeps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="sdesim-out", help="output folder (default ./sdesim-out)")
    p.add_argument("--quick", action="store_true", help="at most 200 steps and 256 runs (a smoke test)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    pr = sub.add_parser("run", help="run the study described in a TOML file (see sdesim.config)")
    pr.add_argument("config", help="study file, e.g. study.toml")
    pr.add_argument("--out", default=None, help="output folder (default: [output] dir of the file)")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    ps = sub.add_parser("sweep", help="run every setting of the file's [sweep] grid; resumes where it stopped")
    ps.add_argument("config", help="study file with a [sweep] table")
    ps.add_argument("--out", default=None, help="results folder (default: [output] dir/sweep)")
    ps.add_argument("--workers", type=int, default=None, help="worker processes (default: min(cores, 4))")
    ps.add_argument("--dask", default=None, help="'local' for a dask LocalCluster, or a scheduler address")
    ps.add_argument("--retry-failed", action="store_true", help="run failed settings again")
    ps.add_argument("--quiet", action="store_true", help="no progress bar")
    pf = sub.add_parser("figures", help="regenerate the figures (python -m experiments) from a source checkout")
    pf.add_argument("names", nargs="*", help="figures to make (default: all)")
    pf.add_argument("--quick", action="store_true", help="small versions that assert every claim")
    pf.add_argument("--force", action="store_true", help="ignore cached results")
    args = parser.parse_args(argv)
    if args.command == "compare" and args.method.lower() not in ("dcsgd", "normalizeddcsgd", "adaptivedcsgd"):
        args.compressor = None
    try:
        return {"list": _cmd_list, "compare": _cmd_compare, "figures": _cmd_figures, "run": _cmd_run,
                "sweep": _cmd_sweep}[args.command](args)
    except ValueError as err:
        print(f"sdesim: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
