"""auxrnn's AuxModel in PyTorch Lightning: auxiliary-only pretraining, then supervised + auxiliary training.

Lightning 2.0 removed `truncated_bptt_steps`. AuxModel needs none of it: one forward call reads the sequence
without a graph and backpropagates only through its truncation windows, so it fits Lightning's automatic
optimisation unchanged (one `training_step`, one loss, one optimizer step).

    pip install 'auxrnn[lightning]'
    python examples/lightning_module.py [--steps 60] [--pretrain-steps 20] [--length 200]

The two phases (paper §1.5): global steps [0, pretrain_steps) are phase "pretrain", the auxiliary loss alone;
the rest are phase "train", supervised loss + aux_weight * auxiliary loss.

DDP: a pretrain step gives the classifier no gradient, so DDP must look for unused parameters while
pretrain_steps > 0: ``Trainer(strategy=DDPStrategy(find_unused_parameters=True))``, or
``strategy="ddp_find_unused_parameters_true"``. With pretrain_steps=0 (and an objective, or truncate > 0)
every parameter gets a gradient every step and plain ``strategy="ddp"`` is right.

Checkpoints hold the anchor generator of every rank (`on_save_checkpoint`), so a resumed run draws the anchors
the uninterrupted one would have. The AuxModel itself is not a hyperparameter: rebuild it and pass it in,
``AuxLightning.load_from_checkpoint(path, model=build_model())`` (docs/library.md, "PyTorch Lightning").
"""
from __future__ import annotations

import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from auxrnn import AuxModel, Reconstruct

ANCHORS = "auxrnn_anchor_generators"  # checkpoint key: (world_size, state bytes) uint8, one row per rank


class AuxLightning(L.LightningModule):
    """A LightningModule around an `AuxModel`; batches are (x (B, T, ...), lengths (B,), y (B,)).

    Args:
        model: the AuxModel to train (not saved as a hyperparameter: its weights are in the state dict).
        pretrain_steps: optimizer steps of phase "pretrain" (auxiliary loss alone) before phase "train".
        aux_weight: factor of the auxiliary loss in phase "train".
        lr: Adam's learning rate.
        seed: seed of the anchor generator; rank r draws from seed + r.
    """

    def __init__(self, model: AuxModel, *, pretrain_steps: int = 0, aux_weight: float = 1.0, lr: float = 1e-3,
                 seed: int = 0):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.anchors = torch.Generator().manual_seed(seed)  # CPU: AuxModel draws anchors on the CPU

    def setup(self, stage: str) -> None:
        self.anchors.manual_seed(self.hparams.seed + self.global_rank)  # a restored checkpoint overrides this

    def phase(self) -> str:
        return "pretrain" if self.global_step < self.hparams.pretrain_steps else "train"

    def training_step(self, batch, batch_idx):
        x, lengths, y = batch
        phase = self.phase()
        out = self.model(x, lengths, y, generator=self.anchors, phase=phase, aux_weight=self.hparams.aux_weight)
        self.log("loss", out.loss, prog_bar=True, batch_size=len(y))
        if out.aux_loss is not None:
            self.log("aux_loss", out.aux_loss, batch_size=len(y))
        if phase == "train":
            self.log("sup_loss", out.sup_loss, batch_size=len(y))
        return out.loss

    def validation_step(self, batch, batch_idx):
        x, lengths, y = batch
        logits = self.model.predict(x, lengths)  # one chunked no-grad read: memory flat in T
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True, batch_size=len(y), sync_dist=True)

    def predict_step(self, batch, batch_idx):
        x, lengths = batch[0], batch[1]
        return self.model.predict(x, lengths).softmax(-1)  # (B, n_classes)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Every rank's anchor generator state (Lightning calls this on every rank; rank 0 writes the file)."""
        state = self.anchors.get_state().to(self.device)
        states = self.all_gather(state) if self.trainer.world_size > 1 else state.unsqueeze(0)
        checkpoint[ANCHORS] = states.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get(ANCHORS)
        if states is None:
            return
        if self.global_rank < len(states):
            self.anchors.set_state(states[self.global_rank].clone())
        else:  # more ranks than were saved: a stream drawn from rank 0's (the run is no longer exact)
            first = torch.Generator()
            first.set_state(states[0].clone())
            self.anchors.manual_seed(int(torch.randint(2**62, (1,), generator=first)) + self.global_rank)


def tiny_model(vocab: int = 8, n_classes: int = 4, subseq_len: int = 20, truncate: int = 20) -> AuxModel:
    """A small r-LSTM for token sequences of `vocab` symbols."""
    return AuxModel(
        encoder=nn.Embedding(vocab, 16),                              # (B, t) tokens -> (B, t, 16)
        core=nn.LSTM(16, 32, batch_first=True),
        head=nn.Linear(32, n_classes),
        objectives=[Reconstruct(subseq_len=subseq_len, aux_truncate=truncate, channels=(vocab,), hidden=32, layers=1,
                                ffn_hidden=32, embed_dim=16)],
        truncate=truncate,                                            # supervised BPTT: the last `truncate` steps
    )


def first_token_task(n: int, length: int, vocab: int = 8, n_classes: int = 4, seed: int = 0) -> TensorDataset:
    """Random tokens (n, length) whose class is the first token mod n_classes: a dependency `length` steps long."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n, length), generator=g)
    return TensorDataset(x, torch.full((n,), length), x[:, 0] % n_classes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60, help="optimizer steps in all")
    p.add_argument("--pretrain-steps", type=int, default=20, help="of which auxiliary-only")
    p.add_argument("--length", type=int, default=200, help="sequence length T")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default="lightning_runs", help="folder of Lightning's checkpoints and logs")
    args = p.parse_args()
    torch.manual_seed(0)
    train = DataLoader(first_token_task(512, args.length), batch_size=args.batch, shuffle=True)
    val = DataLoader(first_token_task(128, args.length, seed=1), batch_size=64)
    module = AuxLightning(tiny_model(), pretrain_steps=args.pretrain_steps, lr=2e-3)
    trainer = L.Trainer(max_steps=args.steps, accelerator="cpu", default_root_dir=args.out, log_every_n_steps=5,
                        val_check_interval=min(args.steps, len(train)))
    trainer.fit(module, train, val)
    print(f"checkpoint {trainer.checkpoint_callback.best_model_path}")


if __name__ == "__main__":
    main()
