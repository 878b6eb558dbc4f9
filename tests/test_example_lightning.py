"""examples/lightning_module.py: the two phases run under Lightning, and a checkpoint keeps the anchor generator."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning")
from torch.utils.data import DataLoader  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lightning_module.py"


def _example():
    spec = importlib.util.spec_from_file_location("lightning_module", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Phases(L.Callback):
    """The phase of each training step, as the module decides it."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(pl_module.phase())


def _trainer(tmp_path, steps, phases):
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     callbacks=[phases])


def test_pretraining_then_training_and_a_checkpoint_that_keeps_the_anchor_generator(tmp_path):
    ex = _example()
    torch.manual_seed(0)
    loader = DataLoader(ex.first_token_task(16, 30), batch_size=4)
    module = ex.AuxLightning(ex.tiny_model(subseq_len=6, truncate=5), pretrain_steps=2, lr=1e-2)
    head = [p.detach().clone() for p in module.model.classifier.parameters()]
    core = [p.detach().clone() for p in module.model.core.parameters()]

    phases = Phases()
    trainer = _trainer(tmp_path, 2, phases)
    trainer.fit(module, loader)
    assert phases.seen == ["pretrain", "pretrain"]
    assert all(torch.equal(a, b) for a, b in zip(head, module.model.classifier.parameters()))  # no gradient
    assert not all(torch.equal(a, b) for a, b in zip(core, module.model.core.parameters()))
    path = tmp_path / "pretrained.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)[ex.ANCHORS]
    assert saved.shape[0] == 1 and torch.equal(saved[0], module.anchors.get_state())

    loaded = ex.AuxLightning.load_from_checkpoint(path, model=ex.tiny_model(subseq_len=6, truncate=5))
    assert torch.equal(loaded.anchors.get_state(), module.anchors.get_state())
    x, lengths, _ = next(iter(loader))
    torch.testing.assert_close(loaded.model.predict(x, lengths), module.model.predict(x, lengths), rtol=0, atol=0)

    phases = Phases()
    resumed = ex.AuxLightning(ex.tiny_model(subseq_len=6, truncate=5), pretrain_steps=2, lr=1e-2)
    _trainer(tmp_path, 4, phases).fit(resumed, loader, ckpt_path=path)
    assert phases.seen == ["train", "train"]
    assert not all(torch.equal(a, b) for a, b in zip(head, resumed.model.classifier.parameters()))
    probs = torch.cat(L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).predict(resumed, loader))
    assert probs.shape == (16, 4) and torch.allclose(probs.sum(-1), torch.ones(16))
