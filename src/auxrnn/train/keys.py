"""Every config key described for `auxrnn train --help-keys`: type, default and one line of help.

The help is the trailing `# comment` of the key's dataclass field (auxrnn.train.config, auxrnn.models.config):
one source, read from the code, never copied. A second `  # ` on that line starts a maintainers' note (the
decision ids of docs/decisions.md), which the help leaves out: users read the thing itself.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
import typing
from dataclasses import dataclass
from typing import Any

from auxrnn.models.config import ARCHS, CELLS, ENCODERS, POSITIONS, READOUTS
from auxrnn.train.config import OPTIMIZERS, PRECISIONS, SCHEDULES, SECTIONS, RunConfig
from auxrnn.values import type_name

# The named choices of the keys that have them (shown by `auxrnn train --help-keys`).
CHOICES = {"optim.optimizer": OPTIMIZERS, "optim.schedule": SCHEDULES,
           "model.encoder": ENCODERS, "model.cell": CELLS,
           "arch.positions": POSITIONS, "arch.readout": READOUTS, "train.precision": PRECISIONS}


@dataclass
class KeyHelp:
    key: str
    type: str
    default: Any
    help: str


def _field_comments(cls) -> dict[str, str]:
    """{field: its trailing `# comment`, up to a maintainers' `  # note`} read from the dataclass source."""
    comments = {}
    for line in textwrap.dedent(inspect.getsource(cls)).splitlines():
        m = re.match(r"    (\w+): [^#]*?#\s*(.*?)(?:\s+#\s.*)?$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def describe_keys(sections: dict[str, type] | None = None) -> list[KeyHelp]:
    """Every key with its type, default and one line of help: the field's trailing comment in its dataclass
    (the single source), followed by the choices of a key that has named ones.

    sections: {name: dataclass}; default the five of RunConfig (data, model, optim, train, arch).
    """
    if sections is None:
        hints = typing.get_type_hints(RunConfig)
        sections = {name: hints[name] for name in SECTIONS}
    from auxrnn.data import DATASETS  # the registry: the one list of dataset names

    choices = {**CHOICES, "data.name": tuple(DATASETS), "arch.name": tuple(ARCHS)}  # registries: read now
    reads = " ".join(f"{name} reads {arch.reads}." for name, arch in ARCHS.items())
    out = [KeyHelp("preset", "str", RunConfig.preset, _field_comments(RunConfig)["preset"])]
    for section, cls in sections.items():
        comments, hints, default = _field_comments(cls), typing.get_type_hints(cls), cls()
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            text = comments.get(f.name, "")
            if key in choices:
                text += f" [{' | '.join(choices[key])}]"
            if key == "arch.name":  # model.* describes the LSTM: say what each other architecture takes from it
                text += f". {reads}"
            out.append(KeyHelp(key, type_name(hints[f.name]), getattr(default, f.name), text))
    return out
