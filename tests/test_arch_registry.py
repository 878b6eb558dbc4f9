"""A new architecture is its own file and one registration: `@register_arch` with `declare=Arch(...)` here, in a
test module, and `auxrnn train arch.name=...` builds and trains it through the run config, with no other file
edited (auxrnn.models.architectures)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pytest

from auxrnn.cli import main
from auxrnn.core.encoders import Encoder
from auxrnn.core.heads import feed_forward
from auxrnn.core.model import AuxModel
from auxrnn.core.recurrent import Recurrent
from auxrnn.models import ARCHS, Arch, ArchConfig, ModelConfig, build, build_model, register_arch
from auxrnn.models.architectures import SPECS
from auxrnn.train.keys import describe_keys
from conftest import tiny_args


@dataclass
class TinyConfig:
    """A GRU classifier with no auxiliary loss: (B, T, C) tokens -> (B, n_classes)."""

    channels: tuple = (10,)
    n_classes: int = 10
    hidden: int = 8
    truncate: int | str = 10

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}


class TinyGRU(AuxModel):
    def __init__(self, cfg: TinyConfig):
        super().__init__(Encoder(cfg.channels, 4), Recurrent("gru", 4, cfg.hidden),
                         feed_forward(cfg.hidden, 8, cfg.n_classes), objectives=[], truncate=cfg.truncate)
        self.cfg = cfg


def tiny_config(model: ModelConfig, arch: ArchConfig) -> TinyConfig:
    """arch.name=tiny-gru reads model.channels, n_classes, hidden and truncate."""
    return TinyConfig(tuple(model.channels), model.n_classes, model.hidden, model.validate().truncate)


@pytest.fixture
def tiny_arch():
    register_arch("tiny-gru", build=TinyGRU, config=lambda cfg: TinyConfig(**(cfg or {})),
                  declare=Arch(__name__, "model.channels, n_classes, hidden and truncate", pretraining="never"))(
        tiny_config)
    yield "tiny-gru"
    ARCHS.pop("tiny-gru")
    SPECS.pop("tiny-gru")


def test_a_registered_architecture_builds_and_trains_through_the_run_config(tiny_arch, tmp_path, capsys):
    assert isinstance(build(ModelConfig(hidden=6), ArchConfig(name=tiny_arch)), TinyGRU)
    assert build_model(tiny_arch, {"hidden": 5}).cfg.hidden == 5
    help_line = next(k for k in describe_keys() if k.key == "arch.name").help
    assert tiny_arch in help_line

    run = tmp_path / "run"
    assert main(["train", *tiny_args(16, 8), f"arch.name={tiny_arch}", "train.steps=2", "model.hidden=6",
                 f"train.out={run}", "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert (run / "checkpoints" / "last.pt").exists()

    # Its pretraining rule is the schema's: "never" refuses a pretraining phase before any work.
    assert main(["train", *tiny_args(16, 8), f"arch.name={tiny_arch}", "train.pretrain_steps=1", "train.steps=1",
                 f"train.out={tmp_path / 'refused'}"]) == 2
    assert "train.pretrain_steps=1 is invalid with arch.name='tiny-gru'" in capsys.readouterr().err


def test_an_undeclared_architecture_is_refused_and_the_registry_is_left_as_it_was():
    with pytest.raises(ValueError, match="architecture 'nope' is not declared"):
        register_arch("nope", build=TinyGRU, config=TinyConfig)(tiny_config)
    assert "nope" not in ARCHS and "nope" not in SPECS
