"""Preset files: where a preset NAME lives, which presets ship, and the chain of bases a preset names.

A preset is `auxrnn/configs/NAME.yaml` (package data) or any YAML file; bases that are not runs themselves
are `_NAME.yaml`. What the keys mean is auxrnn.train.config's business.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import yaml

PRESETS = importlib.resources.files("auxrnn") / "configs"  # shipped inside the package (package data)


def preset_path(name: str, config_dir: Path | None = None):
    """The preset NAME shipped with auxrnn (auxrnn/configs/NAME.yaml), or NAME itself when it is a YAML file.

    Returns a path-like object with `.name` and `.read_text()` (a Path, or a package resource).
    """
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if p.is_file():
            return p
        if p.parent != Path("."):
            raise ValueError(f"preset file {name} does not exist")
    folder = Path(config_dir) if config_dir else PRESETS
    path = folder / f"{p.stem if p.suffix in ('.yaml', '.yml') else name}.yaml"
    if not path.is_file():
        known = ", ".join(list_presets(config_dir)) or "(none found)"
        raise ValueError(f"unknown preset {name!r}: not a YAML file here and not one of auxrnn's presets: {known}")
    return path


def list_presets(config_dir: Path | None = None) -> list[str]:
    """Names of the shipped presets (or of the YAML files in `config_dir`); bases (`_NAME.yaml`) are not runs."""
    folder = Path(config_dir) if config_dir else PRESETS
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml") and not f.name.startswith("_"))


def read_yaml(path) -> dict[str, Any]:
    """A preset file's mapping as written (dotted or nested keys; auxrnn.train.config flattens it)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # a tampered file (a !!python tag, bad bytes): one line
        raise ValueError(f"{path}: not a readable preset ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset must be a mapping of keys to values, got {type(data).__name__}")
    return data


def preset_layers(name: str, config_dir: Path | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """The preset NAME and its bases as (path, keys without `base`), the farthest base first.

    A preset names at most one `base: OTHER` (a preset name, or a YAML file beside it) and lists only what
    differs from it; the base's own base comes before it, and so on. A cycle or a missing base is an error.
    """
    layers: list[tuple[Any, dict[str, Any]]] = []
    seen: list[str] = []
    path = preset_path(name, config_dir)
    while True:
        if str(path) in seen:
            names = [Path(p).name for p in [*seen, str(path)]]
            raise ValueError(f"preset {names[0]}: its bases form a cycle: {' -> '.join(names)}")
        seen.append(str(path))
        keys = read_yaml(path)
        base = keys.pop("base", None)
        layers.insert(0, (path, keys))
        if base is None:
            return layers
        if not isinstance(base, str) or not base:
            raise ValueError(f"preset {path.name}: base must name another preset, got {base!r}")
        local = Path(str(path)).parent / base
        try:
            path = local if Path(base).suffix in (".yaml", ".yml") and local.is_file() else preset_path(base, config_dir)
        except ValueError as exc:
            raise ValueError(f"preset {path.name}: base {base!r}: {exc}") from None
