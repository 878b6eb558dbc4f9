"""The architecture registry: `@register_arch` in each architecture's own file, in the style of timm's
`@register_model`; auxrnn.models.registry only dispatches through it.

    @register_arch("transformer", build=TransformerClassifier, config=transformer_library_config,
                   describe=transformer_parameter_text)
    def transformer_config(model: ModelConfig, arch: ArchConfig) -> TransformerConfig: ...

The decorated function turns a run's `model.*` + `arch.*` into the config its module is built from
(validated). What the run-config schema must know without torch (the name, the pretraining rule, which
model.* keys it reads) is an `Arch` in auxrnn.models.config.ARCHS: the built-in ones are listed there with
the module that registers them (imported on first use); an architecture of another module passes
`declare=Arch(...)` and needs no other file.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from auxrnn.models.config import ARCHS, Arch, ArchConfig, ModelConfig


@dataclass(frozen=True)
class ArchSpec:
    """How one architecture becomes a module.

    resolve(model, arch) -> its config (validated; e.g. the Transformer's size search runs here).
    build(config) -> a fresh module on CPU (from the global torch RNG).
    config(cfg) -> its config for `build_model(name, cfg)`: from a config object, a dict of fields, or None.
    describe(module, model, arch) -> the run log's parameter line; None: the generic one.
    """

    name: str
    resolve: Callable[[ModelConfig, ArchConfig], Any]
    build: Callable[[Any], Any]
    config: Callable[[Any], Any]
    describe: Callable[[Any, ModelConfig, ArchConfig], str] | None = None


SPECS: dict[str, ArchSpec] = {}


def register_arch(name: str, *, build: Callable, config: Callable, describe: Callable | None = None,
                  declare: Arch | None = None):
    """Decorator of an architecture's resolve function (see ArchSpec). declare: its Arch, for an architecture
    outside auxrnn.models.config.ARCHS (a test's, another package's); the built-in ones are declared there."""
    def register(resolve: Callable) -> Callable:
        if declare is not None:
            ARCHS[name] = declare
        elif name not in ARCHS:
            raise ValueError(f"architecture {name!r} is not declared: pass declare=Arch(...) to register_arch")
        SPECS[name] = ArchSpec(name, resolve, build, config, describe)
        return resolve
    return register


def arch_spec(name: str) -> ArchSpec:
    """The registered architecture `name` (its module is imported on first use); unknown names list the choices."""
    if name not in ARCHS:
        raise ValueError(f"arch.name={name!r} is invalid: choose one of {', '.join(ARCHS)}")
    if name not in SPECS:
        importlib.import_module(ARCHS[name].module)
    return SPECS[name]


def split_fields(d: Mapping[str, Any], cls) -> tuple[dict, dict]:
    """(the items of `d` that are fields of dataclass `cls`, the rest): a library dict sorted by config."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}
