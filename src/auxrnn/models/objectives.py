"""The objectives a run can name in model.aux, and the one mapping from model.* to an objective.

    built in       auxrnn.core.objectives.OBJECTIVES (reconstruct, predict, reconstruct_values, predict_values)
    other packages the entry-point group "auxrnn.objectives": ``name = "package.module:Class"``, an
                   `Objective` subclass whose `name` is the entry point's name

    objective_classes(cfg)       the classes model.aux names: the one check that each is a registered objective
    build_objective(name, cfg)   the objective model.* describes: its constructor receives, of ARGUMENTS,
                                 the keywords it names (all of them if it takes **kwargs)
    unavailable(names)           {name: why} for the names whose class cannot be imported here

Core objectives take plain arguments (core holds no configuration objects); this module is where a run's
config becomes those arguments, so an objective written to docs/library.md trains from the CLI unchanged.
"""
from __future__ import annotations

import inspect
from importlib import metadata

from auxrnn.core.objectives import OBJECTIVES, Objective
from auxrnn.models.config import ModelConfig

ENTRY_POINTS = "auxrnn.objectives"

# Objective keyword <- model.* field. channels: the vocabulary per channel, or C (an int) for a real-valued objective.
ARGUMENTS = {"n_anchors": "n_anchors", "subseq_len": "subseq_len", "aux_truncate": "aux_truncate",
             "channels": "channels", "hidden": "aux_hidden", "layers": "aux_layers", "ffn_hidden": "ffn_hidden",
             "embed_dim": "embed_dim", "encoder": "encoder", "dropout": "dropout",
             "teacher_forcing": "teacher_forcing", "forget_bias": "forget_bias", "start": "aux_start"}


class ObjectiveUnavailable(ValueError):
    """model.aux names an objective this environment cannot provide (unknown, or its package fails to import)."""


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed packages' objectives by name (read now: a package installed since is found)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        found.setdefault(ep.name, ep)
    return found


def registered() -> tuple[str, ...]:
    """Every name model.aux may use: the built-in objectives first, then the installed packages' ones."""
    return (*OBJECTIVES, *(n for n in _entry_points() if n not in OBJECTIVES))


def unknown_message(names) -> str:
    """The one line that refuses names no objective is registered under."""
    return (f"unknown objective(s) {list(names)}; choose 'none', 'both' or names joined by '+' from "
            f"{', '.join(registered())} (another package's objective is found once that package is installed: "
            f"entry-point group {ENTRY_POINTS!r})")


def objective_class(name: str) -> type[Objective]:
    """The class registered as `name`; ObjectiveUnavailable if none is, or if its package fails to import."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    ep = _entry_points().get(name)
    if ep is None:
        raise ObjectiveUnavailable(unknown_message([name]))
    where = f"entry point {name} = {ep.value!r} (group {ENTRY_POINTS!r})"
    try:
        cls = ep.load()
    except Exception as exc:  # any import error of another package: say which entry point and why
        raise ObjectiveUnavailable(f"objective {name!r} cannot be imported from {where}: "
                                   f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ValueError(f"{where} is {cls!r}, not a subclass of auxrnn.Objective")
    if cls.name != name:
        raise ValueError(f"{where} names class {cls.__name__} whose name is {cls.name!r}: the two must agree")
    return cls


def objective_classes(cfg: ModelConfig, without: tuple[str, ...] = ()) -> tuple[type[Objective], ...]:
    """The classes of the objectives model.aux lists (ModelConfig.objective_names), in its order, less `without`.

    The one check of model.aux against what is registered: every unknown name is refused at once, naming
    the choices; a registered one whose package fails to import raises ObjectiveUnavailable (a ValueError).
    """
    names = [n for n in cfg.objective_names if n not in without]
    unknown = [n for n in names if n not in registered()]
    if unknown:
        raise ValueError(f"model.aux={cfg.aux!r} is invalid: {unknown_message(unknown)}")
    return tuple(objective_class(n) for n in names)


def unavailable(names) -> dict[str, str]:
    """{name: the reason} for each of `names` whose class cannot be provided here."""
    known, missing = registered(), {}
    for name in names:
        if name not in known:
            missing[name] = f"no installed package registers objective {name!r} (entry-point group {ENTRY_POINTS!r})"
            continue
        try:
            objective_class(name)
        except ObjectiveUnavailable as exc:
            missing[name] = str(exc)
    return missing


def objective_arguments(cls: type[Objective], cfg: ModelConfig) -> dict:
    """The keywords of ARGUMENTS that `cls` takes, valued from model.*."""
    params = inspect.signature(cls).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    values = {key: getattr(cfg, field) for key, field in ARGUMENTS.items()}
    if cls.real_valued:
        values["channels"] = len(cfg.channels)  # C values per step
    return {k: v for k, v in values.items() if takes_all or k in params}


def build_objective(name: str | type[Objective], cfg: ModelConfig) -> Objective:
    """The objective `name` (or its class) as model.* describes it (its head is built when a model binds it)."""
    cls = objective_class(name) if isinstance(name, str) else name
    return cls(**objective_arguments(cls, cfg))
