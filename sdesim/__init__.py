"""sdesim: stochastic differential equations of distributed SGD, compressed SGD and SignSGD.

Build a method, an objective and a noise model; run the optimizer (:func:`run_discrete`) and its SDE
(:func:`simulate`, on torchsde solvers through :func:`solve`); compare them (:func:`compare`). Run the optimizer as
a real multi-process job (:func:`run_distributed`, :mod:`sdesim.optim`), and studies and sweeps from TOML
(:mod:`sdesim.config`, :mod:`sdesim.study`).
The mathematics is documented per function with its MATH.md section.
"""

from importlib.metadata import PackageNotFoundError, version

from . import compressors as compressors
from . import methods as methods
from . import models as models
from . import noise as noise
from . import objectives as objectives
from . import schedules as schedules
from . import theory as theory
from ._checks import NoSDEError as NoSDEError
from ._compare import Comparison as Comparison
from ._compare import compare as compare
from ._results import Trajectories as Trajectories
from ._results import load as load
from ._runs import compare_on as compare_on
from ._runs import run_discrete as run_discrete
from ._runs import simulate as simulate
from ._solve import SOLVERS as SOLVERS
from ._solve import solve as solve
from .increments import GaussianIncrements as GaussianIncrements
from .increments import StableIncrements as StableIncrements

_LAZY = ("optim", "comm", "distributed", "config", "study", "data", "nets", "plotting")


def __getattr__(name):
    """Submodules that pull in more than the core (torch.distributed helpers, datasets, plotting) load on first use."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "run_distributed":
        from .distributed import run_distributed

        return run_distributed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = version("sdesim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "compressors", "methods", "models", "noise", "objectives", "schedules", "theory",
    "optim", "comm", "distributed", "config", "study", "data", "nets", "plotting",
    "run_discrete", "run_distributed", "simulate", "solve", "compare", "compare_on", "load",
    "Trajectories", "Comparison", "NoSDEError", "GaussianIncrements", "StableIncrements", "SOLVERS",
    "__version__",
]
