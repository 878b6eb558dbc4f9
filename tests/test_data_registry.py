"""A dataset is its own class plus one registration: nothing else in auxrnn knows dataset names.

A tiny dataset defined here, registered here and nowhere else, goes through everything a name reaches:
`static_info`, `InputPreparation.of`, `auxrnn data info` with its own flag, `auxrnn train`, `auxrnn.load`
and `predict`. Every registered class declares its input preparation, and no module switches on names.
"""
from __future__ import annotations

import ast
import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import auxrnn
import auxrnn.data.datasets as datasets_pkg
from auxrnn.cli import main
from auxrnn.data import DATASETS, DatasetInfo, SequenceDataset, static_info
from auxrnn.data.datasets import register
from auxrnn.data.datasets.base import Shape
from auxrnn.data.preparation import InputPreparation
from conftest import SAME_THREADS, TINY_MODEL

SRC = Path(auxrnn.__file__).parent


class Stripes(SequenceDataset):
    """`items` sequences of `stripe_width` tokens 0..3; the class is whether the first token is 2 or 3."""

    name = "stripes"
    n_classes, channels = 2, (4,)
    shape_options: ClassVar[tuple[str, ...]] = ("stripe_width",)
    cli_flags: ClassVar[dict[str, str]] = {"stripe_width": "steps per item"}

    def __init__(self, split: str = "train", root=None, stripe_width: int = 12, items: int = 32):
        super().__init__(split, root)
        self.stripe_width = int(stripe_width)
        rng = np.random.default_rng(0 if split == "train" else 1)
        self._x = rng.integers(0, 4, size=(int(items), self.stripe_width), dtype=np.uint8)

    @classmethod
    def shape(cls, *, stripe_width: int, **_: Any) -> Shape:
        return super().shape()._replace(seq_len=int(stripe_width))

    @classmethod
    def preparation(cls, options, state, channels) -> InputPreparation:
        return InputPreparation(cls.name, "tokens", channels)

    @property
    def location(self) -> Path:
        return Path("(generated)")

    def __len__(self) -> int:
        return self._x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self._x[i]), int(self._x[i, 0] >= 2)


@pytest.fixture
def stripes():
    register(Stripes)
    yield Stripes
    DATASETS.pop(Stripes.name)


def test_a_new_dataset_needs_only_its_class_and_its_registration(stripes, tmp_path, capsys):
    assert static_info("stripes", {"stripe_width": 5, "delay": 2}) == DatasetInfo("stripes", 2, (4,), 7, False)

    prep = InputPreparation.of("stripes", {"stripe_width": 5, "delay": 2}, {}, (4,))
    x, lengths = prep(np.array([[1, 2, 3, 0, 1]]))
    assert (prep.kind, prep.delay) == ("tokens", (2, "blank", 0))
    assert x[..., 0].tolist() == [[1, 2, 3, 0, 1, 0, 0]] and lengths.tolist() == [7]

    assert main(["data", "info", "stripes", "--stripe-width", "5"]) == 0
    out = capsys.readouterr().out
    assert "dataset:   stripes" in out and "32 items, sequence length 5 (fixed)" in out
    assert main(["data", "info", "copy", "--stripe-width", "5"]) == 2
    assert "dataset 'copy' does not take --stripe-width" in capsys.readouterr().err

    run = tmp_path / "run"
    assert main(["train", "--preset", "none", "data.name=stripes", "data.options.stripe_width=16",
                 "data.options.delay=1", "data.batch_size=8", *TINY_MODEL, "model.aux=reconstruct",
                 "train.pretrain_steps=2", "train.steps=4", "train.tensorboard=false", f"train.out={run}",
                 "--no-progress", SAME_THREADS]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    model = auxrnn.load(run)
    assert model.preparation == InputPreparation.of("stripes", {"stripe_width": 16, "delay": 1}, {}, (4,))
    pred = model.predict(Stripes("test", stripe_width=16, items=5)._x)
    assert pred.probs.shape == (5, 2) and pred.labels.shape == (5,)


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_registered_dataset_declares_its_input_preparation(name):
    """From its option defaults and a saved state alone; the delay every dataset takes comes on top."""
    state = {"vocab": np.array([256])}  # what the arrays source saves for integer tokens; the others need none
    prep = InputPreparation.of(name, {"delay": 3, "delay_fill": "noise"}, state, (256,))
    assert prep.source == name and prep.delay == (3, "noise", 0)
    assert set(DATASETS[name].cli_flags) <= set(DATASETS[name].option_defaults())


def test_every_dataset_class_of_the_package_is_registered():
    """A class with a `name` in auxrnn/data/datasets/ that is missing from the registry tuple is a dataset no
    name reaches."""
    classes = set()
    for info in pkgutil.iter_modules(datasets_pkg.__path__):
        module = importlib.import_module(f"{datasets_pkg.__name__}.{info.name}")
        classes |= {c for c in vars(module).values() if isinstance(c, type) and issubclass(c, SequenceDataset)
                    and c.__module__ == module.__name__ and c.name}
    assert classes - set(DATASETS.values()) == set()


def test_register_refuses_a_dataset_a_run_could_not_use(stripes):
    class NoPreparation(SequenceDataset):
        name, channels = "nopreparation", (2,)

    with pytest.raises(TypeError, match=r"dataset 'nopreparation' \(NoPreparation\) does not define preparation"):
        register(NoPreparation)

    class BadFlag(Stripes):
        name = "badflag"
        cli_flags = {"colour": "no such option"}

    with pytest.raises(TypeError, match="CLI flags for option.s. it does not take: colour"):
        register(BadFlag)

    class Twin(Stripes):
        pass

    with pytest.raises(ValueError, match="dataset name 'stripes' is taken by Stripes"):
        register(Twin)
    assert "nopreparation" not in DATASETS and "badflag" not in DATASETS and DATASETS["stripes"] is Stripes


def _name_switches(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines that compare with dataset names (`x == "mnist"`, `x in ("dbpedia", "csv")`, `case "copy":`) or
    that list two or more of them (a tuple of names to switch on)."""
    def named(node) -> int:
        if isinstance(node, ast.Constant):
            return int(node.value in names)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return sum(isinstance(e, ast.Constant) and e.value in names for e in node.elts)
        return 0

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(named(n) for n in (node.left, *node.comparators)):
            lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and named(node.value):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and named(node) >= 2:
            lines.append(node.lineno)
    return lines


def test_no_module_switches_on_dataset_names():
    """What differs between datasets is declared on their classes; code that compares names would need an
    edit for every new dataset."""
    names = set(DATASETS)
    found = {f"{p.relative_to(SRC)}:{line}" for p in sorted(SRC.rglob("*.py"))
             for line in _name_switches(ast.parse(p.read_text()), names)}
    assert found == set()


def test_the_name_switch_check_sees_a_switch():
    names = {"mnist", "pmnist", "copy"}
    code = 'A = ("mnist", "pmnist")\nif name == "copy":\n    pass\nmatch name:\n    case "mnist":\n        pass\n'
    assert _name_switches(ast.parse(code), names) == [1, 2, 5]
