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


@pytest.mark.parametrize("marker", ["quickstart", "networks-example"])
def test_readme_examples_run_as_written(tmp_path, marker):
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert block, f"README.md must mark its example with <!-- {marker} -->"
    subprocess.run([sys.executable, "-c", block.group(1)], check=True, cwd=tmp_path, capture_output=True)
