"""Run configuration: typed dataclasses, flat YAML presets and `key=value` overrides.

A run is described by five sections, each a dataclass with a default for every knob:

    data.*   DataConfig    which dataset, batch sizes, loader workers, optional validation split
    model.*  ModelConfig   the (r-/p-)LSTM (auxrnn.models.config; channels and n_classes come from the data)
    arch.*   ArchConfig    which architecture of auxrnn.models.ARCHS trains: rnn (default), transformer, sa-lstm, ...
    optim.*  OptimConfig   optimizer, learning rate and its schedule, clipping, weight decay
    train.*  TrainConfig   seed, phase lengths, aux_weight, evaluation, device, run folder, time budget

A preset (`auxrnn/configs/NAME.yaml`, shipped with the package, or any YAML file) is a flat mapping of dotted
keys to values and lists only what differs from the defaults, or from its `base: OTHER` preset (bases that
are not runs themselves are named `_NAME.yaml`); nested sections (`model: {truncate: 300}`) are accepted too. Command-line overrides use the
same dotted keys (`model.truncate=300`, `optim.lr=1e-3`). Every value is checked against the type of its
field (auxrnn.values) and every key against the dataclasses: a typo is an error, never a silently
ignored knob.

Validation happens in two stages, both before any training work: `validate(cfg)` checks what the config
alone can tell (choices, signs, phase lengths; data.name is checked against the data layer's registry, the one
list of dataset names, by auxrnn.train.runs); `fit_to_data(cfg, info, n_train)` fills the model's
channels and n_classes from the dataset and checks the combinations that depend on it (a subsequence
longer than the sequences, a head that does not fit the data, a batch larger than the training set).
The model.* and arch.* sections check themselves (auxrnn.models.config); what needs model code, such
as the size search of a matched Transformer, is `auxrnn.models.check(cfg.model, cfg.arch)`.

This module imports no torch and no model code: it is the schema, read by every command.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auxrnn.models.config import ARCHS, ArchConfig, ModelConfig, bad_value, check_choice
from auxrnn.train.presets import PRESETS, list_presets, preset_layers, preset_path  # noqa: F401 - this API too
from auxrnn.values import coerce, parse_overrides  # noqa: F401 - parse_overrides is this module's API too

OPTIMIZERS = ("adam", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass
class DataConfig:
    name: str = "mnist"                # the dataset (`auxrnn data info NAME` describes one)
    options: dict = field(default_factory=dict)  # dataset options, e.g. data.options.perm_seed=0 (docs/data.md)
    root: str | None = None            # data folder; None: $AUXRNN_DATA, else the per-user cache  # decision D1
    batch_size: int = 128              # global batch: split evenly across DDP ranks (paper: 128)  # decision T4
    eval_batch_size: int = 500         # evaluation batch; evaluation never drops examples  # decision T15
    workers: int = 0                   # DataLoader worker processes
    val_size: int = 0                  # examples carved from train for validation (paper: none)  # decision T16
    val_seed: int = 0                  # seed of that carve-out, independent of train.seed  # decision T16
    keep_last: int = 0                 # >0: every sequence cut to its last K steps (the window-ceiling model)


@dataclass
class OptimConfig:
    optimizer: str = "adam"            # the optimizer (the paper presets use rmsprop)  # decision T1
    lr: float = 1e-3                   # peak learning rate
    schedule: str = "constant"         # learning-rate schedule, restarted in each phase  # decision T2
    warmup_steps: int = 0              # linear warmup at the start of each phase
    gamma: float = 0.5                 # step schedule: lr *= gamma after every optim.decay_every  # decision T2
    decay_every: float = 0.3           # step schedule: the fraction of the phase between two decays
    min_lr: float = 0.0                # cosine schedule: final lr as a fraction of lr
    clip: float = 1.0                  # gradient-norm clipping; 0 disables (RNN gradients can explode)  # T3
    weight_decay: float = 0.0          # L2 weight decay of the optimizer


@dataclass
class TrainConfig:
    seed: int = 0                      # seeds model init, data order, anchors, dropout  # decisions T15, T17
    pretrain_epochs: int = 0           # phase 1 in epochs: auxiliary loss only (epochs or steps, not both)
    pretrain_steps: int = 0            # phase 1 in steps
    epochs: int = 0                    # phase 2 in epochs: supervised + aux_weight * auxiliary
    steps: int = 0                     # phase 2 in steps
    aux_weight: float = 1.0            # weight of the auxiliary loss in phase 2 (1: an unweighted sum)  # T14
    eval_every: int = 0                # steps between test evaluations; 0 = only at the end  # decision T18
    log_every: int = 50                # steps between metrics.jsonl lines
    checkpoint_every: int = 1000       # steps between checkpoints (also written at every stop)
    device: str = "auto"               # auto (cuda when present), cpu, cuda or cuda:N
    precision: str = "fp32"            # fp32, bf16 (autocast) or auto: bf16 where the device has it natively  # T28
    train_eval_size: int = 0           # training examples (a fixed subset) also scored at each evaluation
    out: str = ""                      # run folder; "" = runs/<preset>-<timestamp>
    max_minutes: float = 0.0           # wall-clock budget of this process; 0 = none. Stops with a checkpoint.
    tensorboard: bool = False          # also write TensorBoard event files (needs the `tensorboard` extra)
    threads: int = 0                   # CPU compute threads of this process; 0 = its share of the cores
    keep_best: bool = False            # keep checkpoints/best.pt: highest validation accuracy (needs data.val_size)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    preset: str = "default"            # name of the preset this run started from (for the record)

    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON/checkpoint friendly)."""
        d = {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}
        d["preset"] = self.preset
        return d


SECTIONS = ("data", "model", "optim", "train", "arch")
_SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig,
                  "arch": ArchConfig}
# Filled from the dataset unless set explicitly; an explicit value must then match the data.
_FROM_DATA = ("model.channels", "model.n_classes")


def _plain(obj):
    if isinstance(obj, tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------------
# Keys and overrides
# --------------------------------------------------------------------------------------------------

def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def all_keys() -> list[str]:
    """Every dotted key a preset or override may set."""
    keys = ["preset"]
    for section, cls in _SECTION_TYPES.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _unknown(key: str) -> ValueError:
    section = key.split(".", 1)[0]
    choices = [k for k in all_keys() if k.startswith(section + ".")] if section in SECTIONS else list(SECTIONS)
    close = difflib.get_close_matches(key, all_keys(), n=1)
    first = f"unknown config key {key!r}; did you mean {close[0]!r}?" if close else f"unknown config key {key!r}."
    return ValueError(f"{first} Valid keys: {', '.join(choices)}.")


def set_key(cfg: RunConfig, key: str, value: Any) -> None:
    """Set one dotted key, type-checked. `data.options.NAME` sets one dataset option."""
    if key == "preset":
        cfg.preset = coerce(key, value, str)
        return
    parts = key.split(".")
    if parts[0] not in SECTIONS or len(parts) < 2:
        raise _unknown(key)
    section = getattr(cfg, parts[0])
    if key == "data.name" and value != section.name:
        section.options = {}  # options belong to a dataset: switching datasets starts from none
    if parts[:2] == ["data", "options"] and len(parts) == 3:
        section.options[parts[2]] = value
        return
    if len(parts) != 2:
        raise _unknown(key)
    hints = _hints(type(section))
    if parts[1] not in hints:
        raise _unknown(key)
    setattr(section, parts[1], coerce(key, value, hints[parts[1]]))


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"truncate": 300}} -> {"model.truncate": 300}; dotted keys pass through.

    `data.options` stays a mapping (it is one field), merged key by key into the current options.
    """
    flat: dict[str, Any] = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key in SECTIONS:
            flat.update(flatten(v, key + "."))
        elif isinstance(v, dict) and key == "data.options":
            for name, opt in v.items():
                flat[f"data.options.{name}"] = opt
        else:
            flat[key] = v
    return flat


def build_config(preset: str | None = "default", overrides: dict[str, Any] | None = None,
                 config_dir: Path | None = None) -> RunConfig:
    """Defaults, then the preset's farthest base, ..., the preset itself (None or "none": the dataclass
    defaults alone), then the overrides.

    Setting data.name to another dataset clears data.options (they belong to the previous dataset); within
    each preset layer and within the overrides data.name is applied first, so the order of the keys does
    not matter.
    Validated (without data) before return.
    """
    cfg = RunConfig()
    cfg.preset = "none"
    explicit: set[str] = set()
    if preset and preset.lower() != "none":
        for path, keys in preset_layers(preset, config_dir):
            for key, value in _dataset_first(flatten(keys)):
                try:
                    set_key(cfg, key, value)
                except ValueError as exc:
                    raise ValueError(f"preset {path.name}: {exc}") from None
                explicit.add(key)
        cfg.preset = Path(preset).stem
    for key, value in _dataset_first(overrides or {}):
        set_key(cfg, key, value)
        explicit.add(key)
    cfg._explicit = explicit  # type: ignore[attr-defined]  # which keys were set (for fit_to_data)
    return validate(cfg)


def _dataset_first(items: dict[str, Any]) -> list[tuple[str, Any]]:
    """data.name before everything else: choosing a dataset clears its options, whatever the order given."""
    return sorted(items.items(), key=lambda kv: kv[0] != "data.name")


def from_dict(d: dict) -> RunConfig:
    """The inverse of RunConfig.to_dict (e.g. a run folder's config.yaml or a checkpoint's config)."""
    cfg = RunConfig()
    flat = flatten(d)
    if "train.amp" in flat:  # run folders written before train.precision (0.1) name bf16 autocast this way
        flat["train.precision"] = "bf16" if flat.pop("train.amp") else "fp32"
    for key, value in flat.items():
        set_key(cfg, key, value)
    cfg._explicit = set(_FROM_DATA)  # type: ignore[attr-defined]  # a saved config was already fitted
    return validate(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------

def validate(cfg: RunConfig) -> RunConfig:
    """Checks that need no data. Raises ValueError naming the key, the bad value and what is allowed."""
    d, m, o, t = cfg.data, cfg.model, cfg.optim, cfg.train
    for key in ("batch_size", "eval_batch_size"):
        if getattr(d, key) < 1:
            raise bad_value(f"data.{key}", getattr(d, key), "must be >= 1")
    for key in ("workers", "val_size", "keep_last"):
        if getattr(d, key) < 0:
            raise bad_value(f"data.{key}", getattr(d, key), "must be >= 0")

    try:
        m.validate()  # model.* checks itself, truncate included
    except ValueError as exc:
        raise ValueError(str(exc)) from None

    check_choice("optim.optimizer", o.optimizer, OPTIMIZERS)
    check_choice("optim.schedule", o.schedule, SCHEDULES)
    if not (o.lr > 0 and math.isfinite(o.lr)):
        raise bad_value("optim.lr", o.lr, "must be a positive finite number")
    if o.clip < 0:
        raise bad_value("optim.clip", o.clip, "must be >= 0 (0 disables clipping)")
    if o.weight_decay < 0:
        raise bad_value("optim.weight_decay", o.weight_decay, "must be >= 0")
    if o.warmup_steps < 0:
        raise bad_value("optim.warmup_steps", o.warmup_steps, "must be >= 0")
    if not 0 < o.gamma <= 1:
        raise bad_value("optim.gamma", o.gamma, "must be in (0, 1]")
    if not 0 < o.decay_every <= 1:
        raise bad_value("optim.decay_every", o.decay_every, "must be a fraction of the phase in (0, 1]")
    if not 0 <= o.min_lr <= 1:
        raise bad_value("optim.min_lr", o.min_lr, "must be a fraction of optim.lr in [0, 1]")

    for key in ("pretrain_epochs", "pretrain_steps", "epochs", "steps"):
        if getattr(t, key) < 0:
            raise bad_value(f"train.{key}", getattr(t, key), "a phase length must be >= 0")
    if t.pretrain_epochs and t.pretrain_steps:
        raise ValueError(f"train.pretrain_epochs={t.pretrain_epochs} and train.pretrain_steps={t.pretrain_steps} "
                         "are both set: give the pretraining length in epochs or in steps, not both")
    if t.epochs and t.steps:
        raise ValueError(f"train.epochs={t.epochs} and train.steps={t.steps} are both set: "
                         "give the training length in epochs or in steps, not both")
    if not (t.epochs or t.steps or t.pretrain_epochs or t.pretrain_steps):
        raise ValueError("nothing to train: set train.epochs or train.steps (and optionally "
                         "train.pretrain_epochs or train.pretrain_steps)")
    _validate_arch(cfg)
    if t.aux_weight < 0 or not math.isfinite(t.aux_weight):
        raise bad_value("train.aux_weight", t.aux_weight, "must be a finite number >= 0")
    for key in ("eval_every", "checkpoint_every"):
        if getattr(t, key) < 0:
            raise bad_value(f"train.{key}", getattr(t, key), "must be >= 0 (0 = only at the end)")
    if t.keep_best and not d.val_size:
        raise ValueError("train.keep_best=true chooses the best model on the validation split, but data.val_size=0 "
                         "carves none: set data.val_size > 0 (the test split is never used to choose)")
    if t.log_every < 1:
        raise bad_value("train.log_every", t.log_every, "must be >= 1")
    if t.max_minutes < 0:
        raise bad_value("train.max_minutes", t.max_minutes, "must be >= 0 (0 = no budget)")
    check_choice("train.precision", t.precision, PRECISIONS)
    if t.train_eval_size < 0:
        raise bad_value("train.train_eval_size", t.train_eval_size, "must be >= 0 (0 = no training-set evaluation)")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device):
        raise bad_value("train.device", t.device, "choose one of auto, cpu, cuda, cuda:N")
    return cfg


def _validate_arch(cfg: RunConfig) -> None:
    """arch.* choices (ArchConfig.validate) and the pretraining rule of the architecture (its ARCHS entry)."""
    a, m, t = cfg.arch, cfg.model, cfg.train
    rule = ARCHS[a.validate().name]
    pretrains = bool(t.pretrain_epochs or t.pretrain_steps)
    key, val = ("train.pretrain_epochs", t.pretrain_epochs) if t.pretrain_epochs else ("train.pretrain_steps",
                                                                                          t.pretrain_steps)
    if rule.pretraining == "optional" and rule.objectives and pretrains and not m.objective_names:
        raise ValueError(f"{key}={val} needs an auxiliary loss, but model.aux='none': pretraining is auxiliary-only. "
                         f"Set {key}=0 or model.aux to one of reconstruct, predict, both")
    if rule.pretraining == "never" and pretrains:
        why = rule.why or "it has no pretraining phase"
        raise ValueError(f"{key}={val} is invalid with arch.name={a.name!r}: {why}. Set {key}=0")
    if rule.pretraining == "required" and not pretrains:
        raise ValueError(f"arch.name={a.name!r} needs a pretraining phase: set train.pretrain_epochs or "
                         f"train.pretrain_steps > 0{f' ({rule.why})' if rule.why else ''}")


def fit_to_data(cfg: RunConfig, info, n_train: int | None = None) -> RunConfig:
    """Fill model.channels / model.n_classes from the dataset and refuse combinations it cannot train.

    Args:
        info: an auxrnn.data.DatasetInfo (loaded, or `static_info` for a check without data): name,
            n_classes, channels, seq_len (the longest sequence), variable_length.
        n_train: training examples after any validation carve-out, when known.
    What needs model code (a Transformer matched to the r-LSTM, an auxiliary subsequence that must fit the
    sequences) is checked by auxrnn.models.check.
    """
    m, explicit = cfg.model, getattr(cfg, "_explicit", set())
    channels = tuple(int(c) for c in info.channels)
    if "model.channels" in explicit and tuple(m.channels) != channels:
        raise ValueError(f"model.channels={list(m.channels)} does not fit dataset {info.name!r}, whose inputs have "
                         f"channels {list(channels)}; drop model.channels (it is filled from the data)")
    if "model.n_classes" in explicit and m.n_classes != int(info.n_classes):
        raise ValueError(f"model.n_classes={m.n_classes} does not fit dataset {info.name!r} with {info.n_classes} "
                         "classes; drop model.n_classes (it is filled from the data)")
    m.channels, m.n_classes = channels, int(info.n_classes)
    T = int(info.seq_len)
    a = cfg.arch
    if a.name == "transformer" and a.positions == "learned":
        if a.max_len == 0:
            a.max_len = T
        elif a.max_len < T:
            raise ValueError(f"arch.max_len={a.max_len} is shorter than the sequences of {info.name!r} (length {T}"
                             f"{', at most' if info.variable_length else ''}): learned positions need "
                             f"arch.max_len >= {T} (or 0 = the data's length)")
    if n_train is not None:
        if n_train < 1:
            raise ValueError(f"dataset {info.name!r} leaves no training examples (data.val_size={cfg.data.val_size})")
        if cfg.data.batch_size > n_train:
            raise ValueError(f"data.batch_size={cfg.data.batch_size} is larger than the training set "
                             f"({n_train} examples of {info.name!r}); choose data.batch_size <= {n_train}")
    try:
        m.validate()
    except ValueError as exc:
        raise ValueError(f"{exc} (dataset {info.name!r})") from None
    return cfg
