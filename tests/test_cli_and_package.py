import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdesim
from sdesim import cli

ROOT = Path(__file__).resolve().parents[1]


def test_public_contract_names():
    for name in ("run_discrete", "simulate", "solve", "compare", "load", "Trajectories", "Comparison",
                 "objectives", "noise", "compressors", "methods", "schedules", "theory", "__version__"):
        assert hasattr(sdesim, name), name
    from sdesim.compressors import Bernoulli, Identity, QSGD, RandK, Sign, TopK  # noqa: F401
    from sdesim.methods import DCSGD, DSGD, SGD, DSignSGD, SignSGD  # noqa: F401
    from sdesim.noise import Affine, Gaussian, Stable, StudentT  # noqa: F401
    from sdesim.objectives import Quadratic, Quartic  # noqa: F401
    from sdesim.schedules import Constant, Cosine, InvSqrt, Warmup  # noqa: F401


def test_import_is_light():
    code = ("import sys, sdesim; heavy = [m for m in ('matplotlib', 'pandas', 'sklearn', 'scipy.stats') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("quadratic", "studentt", "randk", "dsignsgd", "invsqrt", "stable", "srk"):
        assert word in out


def test_cli_compare_quick(tmp_path, capsys):
    code = cli.main(["compare", "--quick", "--quiet", "--out", str(tmp_path), "--method", "dsignsgd",
                     "--noise", "studentt(nu=1, sigma=0.5)", "--objective", "coshsum(a=2.0)", "--x0", "1", "-1"])
    assert code == 0
    for name in ("summary.txt", "summary.json", "comparison.png", "discrete.npz", "sde.npz"):
        assert (tmp_path / name).stat().st_size > 0
    assert "weak error" in (tmp_path / "summary.txt").read_text()
    assert sdesim.load(tmp_path / "sde.npz").kind == "sde"


def test_cli_errors_name_the_option(capsys):
    assert cli.main(["compare", "--quick", "--noise", "gausian(sigma=1)"]) == 2
    assert "did you mean 'gaussian'" in capsys.readouterr().err
    assert cli.main(["compare", "--quick", "--noise", "studentt(nu=1)", "--method", "dsgd"]) == 2
    assert "infinite variance" in capsys.readouterr().err


def _readme_block(marker: str, lang: str = "python") -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```{lang}\n(.*?)```", text, re.S)
    assert block, f"README.md must mark its example with <!-- {marker} -->"
    return block.group(1)


def _run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("marker", ["quickstart", "networks-example", "optim-example", "ddp-example",
                                    "distributed-example"])
def test_readme_examples_run_as_written(tmp_path, marker):
    # run as a script file, as a user would (the multi-process examples need an importable __main__)
    script = tmp_path / "example.py"
    script.write_text(_readme_block(marker))
    out = _run([sys.executable, str(script)], tmp_path)
    if marker == "optim-example":
        assert out.startswith("1 agent(s)")
        # the same file under torchrun: two agents exchanging compressed payloads
        out = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", str(script)], tmp_path)
        assert "2 agent(s)" in out
    if marker == "distributed-example":
        assert float(out.split()[0]) < 1e-6


def test_readme_study_runs_and_sweeps_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- study-toml -->\s*```toml\n(.*?)```\s*```bash\n(.*?)```", text, re.S)
    assert found, "README.md must show the study file (<!-- study-toml -->) followed by its commands"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study.toml").write_text(found.group(1))
    commands = [line.split("#")[0].split() for line in found.group(2).splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["sdesim", "run"], ["sdesim", "sweep"]]
    for cmd in commands:
        assert cli.main(cmd[1:] + ["--quiet"]) == 0
    study = tmp_path / "sdesim-out" / "study"
    assert (study / "comparison.png").exists() and (study / "summary.json").exists()
    results = (study / "sweep" / "results.csv").read_text().splitlines()
    assert len(results) == 1 + 6 and all(",ok," in line for line in results[1:])
