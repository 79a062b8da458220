"""The figure scripts, in their --quick versions: every claim each figure makes must hold (MATH.md §7–§8)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_figures_regenerate_and_support_their_claims(tmp_path):
    # `sdesim figures --quick` (= python -m experiments --quick) from the repository root; --force so that a cached
    # result cannot hide a broken script.
    proc = subprocess.run([sys.executable, "-m", "sdesim.cli", "figures", "--quick", "--force"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout
    names = [line.split(":")[0] for line in proc.stdout.splitlines() if " -> " in line]
    assert len(names) >= 7
    for name in names:
        assert (ROOT / "experiments" / "results" / "quick" / f"{name}.png").stat().st_size > 10_000
