"""The one place that knows where things live."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
RESULTS = EXPERIMENTS / "results"  # cached run outputs (git-ignored)
FIGURES = ROOT / "figures"  # full-size figures (committed)
QUICK_FIGURES = RESULTS / "quick"  # --quick figures (git-ignored)
