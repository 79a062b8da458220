r"""Studies described in TOML: ``sdesim run CONFIG.toml`` and the settings of ``sdesim sweep``.

A study names an objective, a noise model, a method, how to run both sides (the optimizer and its SDE), and where to
write results and the figure::

    [objective]
    name = "quadratic"            # or "network" with dataset = "digits" | "breast_cancer" | "wine",
    h = [1.0, 4.0]                # model = "mlp" | "cnn", hidden = [16], seed = 0

    [noise]
    name = "gaussian"
    sigma = 0.5

    [method]
    name = "dcsgd"
    lr = 0.05
    n_agents = 4
    compressor = { name = "randk", k = 1 }
    schedule = { name = "invsqrt" }   # optional

    [run]
    steps = 2000
    seed = 0
    record_every = 10
    x0 = [1.0, 1.0]               # default: the network's own parameters, or all ones

    [discrete]
    runs = 1024
    backend = "in_process"        # or "distributed": one process per agent (sdesim.distributed)

    [sde]                         # enabled = false to run the optimizer only
    paths = 1024
    model = "first_order"
    solver = "euler"
    substeps = 1

    [output]
    dir = "sdesim-out/study"
    figure = true

    [sweep]                       # only for ``sdesim sweep``: a grid over any fields
    "method.lr" = [0.01, 0.02, 0.04]
    "run.seed" = [0, 1]

Errors name the file, the line and the field (:class:`ConfigError`).
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from . import _checks

#: every section, its fields and their defaults (``...``: required)
SCHEMA: dict[str, dict[str, Any]] = {
    "objective": {"name": ...},
    "noise": {"name": ...},
    "method": {"name": ..., "lr": ...},
    "run": {"steps": ..., "seed": 0, "record_every": 1, "x0": None, "divergence_threshold": float("inf")},
    "discrete": {"runs": 256, "backend": "in_process", "timeout": 30.0},
    "sde": {"enabled": True, "paths": None, "model": "first_order", "solver": "euler", "substeps": 1},
    "output": {"dir": "sdesim-out", "figure": True},
    "sweep": {},
}
_NETWORK_FIELDS = {"name", "dataset", "model", "hidden", "channels", "activation", "seed", "loss", "test_size"}


class ConfigError(ValueError):
    """A study configuration is invalid; the message names the file, line and field."""


class _Located:
    """Line numbers of the fields of a TOML text (tables, dotted and quoted keys, inline tables by their key)."""

    _HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")

    def __init__(self, text: str, source: str):
        self.source = source
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for i, line in enumerate(text.splitlines(), 1):
            m = self._HEADER.match(line)
            if m:
                table = self._split(m.group(1))
                self.lines.setdefault(table, i)
                continue
            m = self._KEY.match(line)
            if m:
                self.lines.setdefault(table + self._split(m.group(1)), i)

    @staticmethod
    def _split(key: str) -> tuple[str, ...]:
        parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", key)
        return tuple(next(p for p in part if p) if any(part) else "" for part in parts)

    def line(self, field: str) -> int | None:
        path = tuple(field.split("."))
        # sweep keys are written quoted as one key: "method.lr"
        if path[0] == "sweep" and ("sweep", ".".join(path[1:])) in self.lines:
            return self.lines[("sweep", ".".join(path[1:]))]
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, field: str, message: str) -> ConfigError:
        line = self.line(field)
        where = f"{self.source}:{line}" if line is not None else self.source
        return ConfigError(f"{where}: {field}: {message}")


def loads(text: str, source: str = "<config>") -> dict:
    """Parse and validate a study from TOML text; returns the config with defaults filled in."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: {err}") from None
    loc = _Located(text, source)
    config = validate(raw, loc)
    config["_source"] = source
    return config


def load(path) -> dict:
    """Read and validate a study file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    return loads(path.read_text(), str(path))


def validate(raw: dict, loc: _Located | None = None) -> dict:
    """Check sections and fields, fill defaults, and build every component once to surface bad values."""
    loc = loc or _Located("", "<config>")
    config: dict[str, Any] = {}
    for section in raw:
        if section not in SCHEMA:
            raise _unknown(loc, section, section, SCHEMA, "unknown section", lambda c: f"[{c}]")
        if not isinstance(raw[section], dict):
            raise loc.error(section, "must be a table")
    for section, fields in SCHEMA.items():
        given = dict(raw.get(section, {}))
        if section in ("objective", "noise", "method", "sweep"):
            config[section] = given
        else:
            for key in given:
                if key not in fields:
                    raise _unknown(loc, f"{section}.{key}", key, fields, "unknown field")
            config[section] = {k: given.get(k, v) for k, v in fields.items()}
        for key, default in fields.items():
            if default is ... and key not in config[section]:
                raise loc.error(section, f"missing required field {key!r}")
    _check_sweep(config, loc)
    _check_fields(config, loc)
    build_parts(config, loc)
    return config


def _check_fields(config: dict, loc: _Located) -> None:
    from ._solve import SOLVERS
    from .models import MODELS

    def check(field, fn):
        section, key = field.split(".")
        try:
            fn(key, config[section][key])
        except ValueError as err:
            raise loc.error(field, str(err)) from None

    def boolean(key, v):
        if not isinstance(v, bool):
            raise ValueError(f"{key} must be true or false, got {v!r}")

    check("run.steps", lambda k, v: _checks.positive_int(k, v, minimum=0))
    check("run.seed", lambda k, v: _checks.positive_int(k, v, minimum=0))
    check("run.record_every", _checks.positive_int)
    check("discrete.runs", _checks.positive_int)
    check("discrete.backend", lambda k, v: _checks.one_of(k, v, ("in_process", "distributed")))
    check("discrete.timeout", _checks.positive)
    check("sde.enabled", boolean)
    check("sde.paths", lambda k, v: v is None or _checks.positive_int(k, v))
    check("sde.substeps", _checks.positive_int)
    check("sde.model", lambda k, v: _checks.one_of(k, v, tuple(MODELS)))
    check("sde.solver", lambda k, v: _checks.one_of(k, v, tuple(SOLVERS)))
    check("output.figure", boolean)
    check("output.dir", lambda k, v: v if isinstance(v, str) and v else (_ for _ in ()).throw(
        ValueError(f"{k} must be a folder path (a non-empty string), got {v!r}")))


def _unknown(loc: _Located, field: str, key: str, allowed, what: str, show=repr) -> ConfigError:
    """The error for a name that is not one of ``allowed``, with the closest match as a suggestion."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean {show(close[0])}?" if close else ""
    return loc.error(field, f"{what}{hint} Allowed: {', '.join(allowed)}")


def _check_sweep(config: dict, loc: _Located) -> None:
    for field, values in config["sweep"].items():
        if not isinstance(values, list) or not values:
            raise loc.error(f"sweep.{field}", "must be a non-empty list of values")
        section, *rest = field.split(".")
        if section not in SCHEMA or section == "sweep" or not rest:
            raise loc.error(f"sweep.{field}", "must name a field as section.key, e.g. \"method.lr\"")


def _component(spec, registry: dict, what: str, field: str, loc: _Located):
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise loc.error(field, f"write {{ name = \"...\", ... }} for the {what}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        cls = _checks.lookup(registry, spec["name"], what)
    except ValueError as err:
        raise loc.error(f"{field}.name", str(err)) from None
    return _construct(cls, kwargs, field, loc)


def _construct(cls, kwargs: dict, field: str, loc: _Located):
    import inspect

    params = inspect.signature(cls).parameters
    for key in kwargs:
        if key not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise _unknown(loc, f"{field}.{key}", key, params, f"{cls.__name__} has no field {key!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        bad = next((k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", str(err))), None)
        raise loc.error(f"{field}.{bad}" if bad else field, str(err)) from None


def _network(spec: dict, loc: _Located):
    from . import data, nets
    from .objectives import Network

    for key in spec:
        if key not in _NETWORK_FIELDS:
            raise _unknown(loc, f"objective.{key}", key, sorted(_NETWORK_FIELDS), "unknown network field")
    try:
        dataset = _checks.one_of("dataset", spec.get("dataset", "digits"), ("digits", "breast_cancer", "wine"))
    except ValueError as err:
        raise loc.error("objective.dataset", str(err)) from None
    try:
        model = _checks.one_of("model", spec.get("model", "mlp"), ("mlp", "cnn"))
    except ValueError as err:
        raise loc.error("objective.model", str(err)) from None
    seed = spec.get("seed", 0)
    if model == "cnn" and dataset != "digits":
        raise loc.error("objective.model", "the cnn takes 8×8 images: use dataset = \"digits\"")
    try:
        load = getattr(data, dataset)
        ds = load(seed=seed, test_size=spec.get("test_size", 0.25), **({"image": True} if model == "cnn" else {}))
        if model == "cnn":
            module = nets.cnn8x8(ds.n_classes, tuple(spec.get("channels", (8, 16))), seed=seed)
        else:
            module = nets.mlp(ds.x_train.shape[1], ds.n_classes, tuple(spec.get("hidden", (16,))),
                              activation=spec.get("activation", "tanh"), seed=seed)
        return Network(module, ds.x_train, ds.y_train, spec.get("loss", "cross_entropy"),
                       test_inputs=ds.x_test, test_targets=ds.y_test)
    except (ValueError, TypeError) as err:
        raise loc.error("objective", str(err)) from None


def build_parts(config: dict, loc: _Located | None = None):
    """(method, objective, noise, x0) of a validated study."""
    import torch

    from .compressors import COMPRESSORS
    from .methods import METHODS
    from .noise import NOISES
    from .objectives import OBJECTIVES
    from .schedules import SCHEDULES

    loc = loc or _Located("", config.get("_source", "<config>"))
    obj_spec = config["objective"]
    if str(obj_spec.get("name", "")).lower() == "network":
        objective = _network(obj_spec, loc)
    else:
        objective = _component(obj_spec, OBJECTIVES, "objective", "objective", loc)
    noise = _component(config["noise"], NOISES, "noise", "noise", loc)
    m = dict(config["method"])
    cls_name = m.pop("name")
    try:
        cls = _checks.lookup(METHODS, cls_name, "method")
    except ValueError as err:
        raise loc.error("method.name", str(err)) from None
    if "compressor" in m:
        comp = m["compressor"]
        m["compressor"] = ([_component(c, COMPRESSORS, "compressor", "method.compressor", loc) for c in comp]
                           if isinstance(comp, list) else _component(comp, COMPRESSORS, "compressor",
                                                                     "method.compressor", loc))
    if "schedule" in m:
        m["schedule"] = _component(m["schedule"], SCHEDULES, "schedule", "method.schedule", loc)
    method = _construct(cls, m, "method", loc)
    x0 = config["run"]["x0"]
    if x0 is None:
        x0 = objective.x0 if hasattr(objective, "x0") and isinstance(objective.x0, torch.Tensor) else \
            torch.ones(objective.dim or 2, dtype=torch.float64)
    else:
        try:
            x0 = torch.tensor(x0, dtype=torch.float64)
        except (TypeError, ValueError):
            raise loc.error("run.x0", f"must be a list of numbers, got {x0!r}") from None
        if x0.ndim != 1:
            raise loc.error("run.x0", f"must be a flat list of numbers, got shape {tuple(x0.shape)}")
    d = int(x0.shape[-1])
    for field, check in (("run.x0", lambda: objective.check_dim(d)),
                         ("method.compressor" if "compressor" in config["method"] else "method",
                          lambda: method.check_dim(d)),
                         ("noise", lambda: noise.check(method.n_agents, d))):
        try:
            check()
        except ValueError as err:
            raise loc.error(field, f"{err} (d = {d} from run.x0)") from None
    return method, objective, noise, x0


def with_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """A copy of ``config`` with dotted fields replaced (``{"method.lr": 0.1}``); ``sweep`` is dropped."""
    out = copy.deepcopy({k: v for k, v in config.items() if k != "sweep"})
    for field, value in overrides.items():
        node = out
        *parents, last = field.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    out["sweep"] = {}
    return out


def canonical(config: dict) -> str:
    """The study as canonical JSON (sorted keys; output folder and source left out): the identity of a setting."""
    body = {k: v for k, v in config.items() if k not in ("output", "_source", "sweep")}
    return json.dumps(body, sort_keys=True, default=repr, allow_nan=True)


__all__ = ["ConfigError", "load", "loads", "validate", "build_parts", "with_overrides", "canonical", "SCHEMA"]
