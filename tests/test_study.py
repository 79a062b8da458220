"""Studies in TOML (``sdesim run``), sweeps (``sdesim sweep``): validation with file and line, atomic per-setting
results, failures recorded, resume after SIGKILL, and a dask.distributed cluster as the executor."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sdesim import cli, config, study

STUDY = """\
[objective]
name = "quadratic"
h = [1.0, 4.0]

[noise]
name = "gaussian"
sigma = 0.5

[method]
name = "dcsgd"
lr = 0.05
n_agents = 4
compressor = {{ name = "randk", k = 1 }}

[run]
steps = {steps}
seed = 0
record_every = 10
x0 = [1.0, 1.0]

[discrete]
runs = {runs}

[sde]
paths = {runs}

[output]
dir = "{out}"
figure = {figure}
"""


def _study(tmp_path, sweep="", steps=200, runs=128, figure="false", out=None):
    text = STUDY.format(steps=steps, runs=runs, out=out or (tmp_path / "out").as_posix(), figure=figure) + sweep
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit, where", [
    (("lr = 0.05", "lr = -0.05"), r"study.toml:11: method.lr: lr must be finite and > 0"),
    (("k = 1 }", "kk = 1 }"), r"study.toml:13: method.compressor.kk: RandK has no field 'kk'; did you mean 'k'"),
    (('name = "gaussian"', 'name = "gausian"'), r"study.toml:6: noise.name: unknown noise 'gausian'; did you mean"),
    (("steps = 200", "stepz = 200"), r"study.toml:16: run.stepz: unknown field; did you mean 'steps'"),
    (("[sde]", "[sdee]"), r"study.toml:24: sdee: unknown section; did you mean \[sde\]"),
    (("x0 = [1.0, 1.0]", "x0 = [1.0, 1.0, 2.0]"), r"study.toml:19: run.x0: x0 must have last dimension 2"),
    (("k = 1 }", "k = 3 }"), r"study.toml:13: method.compressor: k must be <= d"),
    (("runs = 128", "runs = 0"), r"study.toml:22: discrete.runs: runs must be an integer >= 1"),
    (("h = [1.0, 4.0]", "h = [1.0, 4.0"), r"study.toml: Unclosed array \(at line 5"),
])
def test_config_errors_name_file_line_and_field(tmp_path, edit, where):
    path = _study(tmp_path)
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(config.ConfigError, match=where):
        config.load(path)
    assert cli.main(["run", str(path), "--quiet"]) == 2


def test_run_writes_results_and_figure(tmp_path, capsys):
    path = _study(tmp_path, figure="true")
    assert cli.main(["run", str(path), "--quiet"]) == 0
    out = tmp_path / "out"
    for name in ("discrete.npz", "sde.npz", "summary.json", "comparison.png"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["weak_error"] > 0 and 0 <= summary["ci_overlap"] <= 1
    assert "weak_error" in capsys.readouterr().out


SWEEP = """
[sweep]
"method.lr" = [0.02, 0.05]
"noise.sigma" = [0.1, 0.5]
"""


def test_sweep_records_a_failing_setting_and_goes_on(tmp_path):
    cfg = config.load(_study(tmp_path, sweep='\n[sweep]\n"method.lr" = [0.05, -1.0, 0.02]\n'))
    df = study.sweep(cfg, max_workers=2, progress=False)
    assert list(df["method.lr"]) == [0.05, -1.0, 0.02]
    assert list(df["status"]) == ["ok", "failed", "ok"]
    assert "lr must be finite and > 0" in df["error"][1]
    record = json.loads((tmp_path / "out" / "sweep" / f"{df['key'][1]}.json").read_text())
    assert "Traceback" in record["traceback"]
    # a second call finds everything done and runs nothing
    again = study.sweep(cfg, max_workers=2, progress=False)
    pd.testing.assert_frame_equal(df, again)


def _files(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.json")}


def test_sweep_killed_with_sigkill_resumes_without_redoing(tmp_path):
    grid = '\n[sweep]\n"method.lr" = [0.01, 0.02, 0.03, 0.04]\n"run.seed" = [0, 1]\n'
    # each setting takes a noticeable time, so that the kill lands part-way
    path = _study(tmp_path, sweep=grid, steps=3000, runs=1024)
    folder = tmp_path / "out" / "sweep"
    cmd = [sys.executable, "-m", "sdesim.cli", "sweep", str(path), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("*.json"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
    proc.wait()
    before = _files(folder)
    assert 2 <= len(before) < 8, "the kill must land part-way through the sweep"
    assert subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    after = _files(folder)
    assert len(after) == 8
    assert all(after[name] == stamp for name, stamp in before.items())  # finished settings were not run again
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    resumed = study.results(config.load(path))
    # the same sweep, uninterrupted, elsewhere
    (tmp_path / "clean").mkdir()
    clean = study.sweep(config.load(_study(tmp_path / "clean", sweep=grid, steps=3000, runs=1024)),
                        max_workers=2, progress=False)
    assert (resumed["status"] == "ok").all() and resumed["key"].is_unique
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), clean.drop(columns="seconds"))


def test_sweep_on_a_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    cfg = config.load(_study(tmp_path, sweep=SWEEP))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        df = study.sweep(cfg, executor=client.get_executor(), progress=False)
    assert len(pids) == 2 and os.getpid() not in pids  # separate worker processes
    assert len(df) == 4 and (df["status"] == "ok").all()
    local = study.sweep(config.load(_study(tmp_path, sweep=SWEEP, out=(tmp_path / "local").as_posix())),
                        max_workers=2, progress=False)
    pd.testing.assert_frame_equal(df.drop(columns="seconds"), local.drop(columns="seconds"))
