"""Regenerate the figures: ``python -m experiments [NAME ...] [--quick] [--force] [--list]``.

Each ``experiments/fig_<name>.py`` holds one figure: a docstring with the claim it tests, a ``Config`` dataclass whose
defaults are the full-size settings, ``QUICK`` (a small configuration), ``run(config) -> dict``, ``plot(results,
config) -> Figure`` and ``check(results, config) -> list[Claim]``. Results are cached in ``experiments/results/``
under a hash of the configuration and the script, so only changed figures rerun.

Full-size figures go to ``figures/`` with ``figures/claims.json`` and ``figures/README.md``; ``--quick`` figures go
to ``experiments/results/quick/`` and every claim must hold (the exit status is 1 otherwise), which is what the test
suite runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

import matplotlib

matplotlib.use("Agg")

from experiments import _paths  # noqa: E402
from experiments._common import Claim, config_hash, load_results, save_figure, save_results  # noqa: E402

ORDER = ["sde_vs_optimizer", "weak_order", "noise_floors", "scaling_rules", "stability", "heavy_tails",
         "normalization", "networks", "networks_normalization", "networks_heavy_tails", "text_model"]


def figure_names() -> list[str]:
    found = sorted(p.stem[4:] for p in _paths.EXPERIMENTS.glob("fig_*.py"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def run_one(name: str, quick: bool, force: bool):
    import matplotlib.pyplot as plt

    module = importlib.import_module(f"experiments.fig_{name}")
    config = module.QUICK if quick else module.Config()
    key = config_hash(module, config)
    cache = _paths.RESULTS / f"{name}-{'quick' if quick else 'full'}-{key}.npz"
    if cache.exists() and not force:
        results, how = load_results(cache), "cached"
    else:
        start = time.perf_counter()
        results, how = module.run(config), "ran"
        results["_seconds"] = time.perf_counter() - start
        save_results(cache, results)
    elapsed = float(results["_seconds"])  # the time of the run that produced the results
    fig = module.plot(results, config)
    paths = save_figure(fig, _paths.QUICK_FIGURES if quick else _paths.FIGURES, name)
    plt.close(fig)
    claims = module.check(results, config)
    print(f"{name}: {how} (run took {elapsed:.1f}s) -> {paths[0]}")
    for c in claims:
        mark = "ok" if c.passed else ("FAILED" if c.required else "not supported (reported)")
        print(f"  [{mark}] {c.text}: {c.numbers}")
    return module, config, claims, elapsed


def write_readme(records) -> None:
    all_claims = [c for *_, claims, _ in records for c in claims]
    total = sum(elapsed for *_, elapsed in records)
    lines = ["# Figures", "",
             "Regenerate all of them with `python -m experiments` (or `sdesim figures`) from the repository root "
             f"(about {total / 60:.0f} minutes on 2 CPU cores); one of them with `python -m experiments NAME`. "
             "`--quick` runs small versions that assert every claim (the test suite does). Results are cached in "
             "`experiments/results/`. Section numbers (§) refer to [`docs/MATH.md`](../docs/MATH.md).", "",
             f"In the full-size run committed here, {sum(c.passed for c in all_claims)} of {len(all_claims)} "
             "claims are supported by the numbers.", ""]
    for name, module, config, claims, elapsed in records:
        doc = (module.__doc__ or "").strip().split("\n\n")
        lines += [f"## {name}", "", f"![{name}]({name}.png)", "",
                  f"Command: `python -m experiments {name}` (script `experiments/fig_{name}.py`, "
                  f"about {max(elapsed, 1):.0f} s on 2 CPU cores).", "", doc[0].replace("\n", " "), ""]
        if len(doc) > 1:
            lines += [" ".join(p.replace("\n", " ") for p in doc[1:]), ""]
        lines += ["| claim | supported | numbers |", "|---|---|---|"]
        lines += [f"| {c.text}{'' if c.required else ' (reported either way)'} | {'yes' if c.passed else '**no**'} "
                  f"| {c.numbers} |" for c in claims]
        lines.append("")
    (_paths.FIGURES / "README.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="figures to make (default: all)")
    parser.add_argument("--quick", action="store_true", help="small versions; every claim must hold")
    parser.add_argument("--force", action="store_true", help="ignore cached results")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)
    names = figure_names()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        print(f"unknown figure(s) {unknown}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    chosen = args.names or names
    records, failed = [], []
    for name in chosen:
        module, config, claims, elapsed = run_one(name, args.quick, args.force)
        records.append((name, module, config, claims, elapsed))
        failed += [f"{name}: {c.text}" for c in claims if not c.passed and c.required]
    if not args.quick:
        claims_path = _paths.FIGURES / "claims.json"
        old = json.loads(claims_path.read_text()) if claims_path.exists() else {}
        for name, _, _, claims, elapsed in records:
            old[name] = {"seconds": elapsed, "claims": [c.__dict__ for c in claims]}
        claims_path.write_text(json.dumps(old, indent=2))
        if set(old) >= set(names):
            write_readme([(n, importlib.import_module(f"experiments.fig_{n}"), None,
                           [Claim(**c) for c in old[n]["claims"]], old[n]["seconds"]) for n in names])
    if failed:
        print("claims not supported:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1 if args.quick else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
