"""What a trained run reads from the last K steps alone: a check that truncated gradients did not leak.

A classifier trained with truncation K gets no gradient from steps before T - K, so whatever it learned must
come from the last K steps. This scores a run's test set three ways:

  as trained               the inputs unchanged
  prefix from another      steps [0, T-K) taken from the next test example (labels kept)
  prefix blanked           steps [0, T-K) set to token 0 (a black pixel on MNIST)

and fits two classifiers on the last K input values alone (divided by the largest), on the training split, as
references for how much class information the window itself holds: a linear one (softmax regression, 200
L-BFGS iterations) and an MLP (one hidden layer of 512 ReLUs, Adam 1e-3, 20 epochs of batches of 256, seed 0;
its last epoch is scored, the test set chooses nothing). A trained model above the MLP's figure has read
more than its window could give it; one below it may or may not have.

With --references-only it reads the run folder's config.yaml and fits the two references alone, so it works on
a published folder that has no checkpoint.

    python scripts/window_probe.py RUN_DIR [--keep 300] [--threads 2] [--references-only]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch


def _tensors(ds, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from auxrnn.train.batches import eval_batches

    xs, ls, ys = zip(*eval_batches(ds, batch_size))
    return torch.cat(xs), torch.cat(ls), torch.cat(ys)


@torch.no_grad()
def _score(model, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    correct = sum(int((model.predict(x[i:i + batch_size], lengths[i:i + batch_size]).argmax(-1)
                       == y[i:i + batch_size]).sum()) for i in range(0, len(y), batch_size))
    return 100.0 * correct / len(y)


def _prefix_rows(model, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, cut: int) -> list[tuple[str, float]]:
    """The model scored as trained, with steps [0, cut) from the next example, and with them blanked."""
    from auxrnn.train.cpu import flush_denormals

    other = torch.cat([x[1:], x[:1]])
    swapped, blanked = x.clone(), x.clone()
    swapped[:, :cut] = other[:, :cut]
    blanked[:, :cut] = 0
    with flush_denormals(torch.device("cpu")):
        return [("as trained", _score(model, x, lengths, y)),
                (f"steps [0, {cut}) from another example", _score(model, swapped, lengths, y)),
                (f"steps [0, {cut}) blanked", _score(model, blanked, lengths, y))]


def _window_features(x: torch.Tensor, keep: int, scale: float) -> torch.Tensor:
    """(N, T[, C]) inputs -> (N, keep * C) floats: the last `keep` steps, divided by the training split's largest."""
    return x[:, -keep:].reshape(len(x), -1).float() / scale


def _linear_reference(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor,
                      n_classes: int) -> float:
    w = torch.zeros(ftr.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ftr @ w + b, ytr) + 1e-4 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100.0 * float(((fte @ w + b).argmax(-1) == yte).float().mean())


def _mlp_reference(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor, n_classes: int,
                   hidden: int = 512, epochs: int = 20) -> float:
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # PyTorch's default init, seeded, without touching the caller's generator
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(ftr.shape[1], hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, n_classes))
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(order), 256):
            j = order[i:i + 256]
            loss = torch.nn.functional.cross_entropy(mlp(ftr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return 100.0 * float((mlp(fte).argmax(-1) == yte).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a run folder (its checkpoint is scored)")
    p.add_argument("--keep", type=int, default=300, help="steps at the end left as they are (default 300)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = automatic)")
    p.add_argument("--references-only", action="store_true",
                   help="fit only the two window references, from the run folder's config.yaml (no checkpoint)")
    args = p.parse_args()

    import yaml

    from auxrnn.data import load_dataset
    from auxrnn.train import checkpoint
    from auxrnn.train.config import from_dict
    from auxrnn.train.cpu import use_threads
    from auxrnn.train.evaluation import restored_model

    use_threads(args.threads)
    if args.references_only:
        ckpt = None
        cfg = from_dict(yaml.safe_load((Path(args.run) / "config.yaml").read_text()))
    else:
        path = checkpoint.find(args.run)
        ckpt = checkpoint.load(path)
        cfg = from_dict(ckpt["config"])
    test_ds = load_dataset(cfg.data.name, "test", root=cfg.data.root, **cfg.data.options)
    x, lengths, y = _tensors(test_ds)
    if not bool((lengths == x.shape[1]).all()):
        raise SystemExit("window_probe needs sequences of one length (no padding)")
    if not 0 < args.keep < x.shape[1]:
        raise SystemExit(f"--keep must be between 1 and {x.shape[1] - 1} (the sequences have {x.shape[1]} steps)")
    cut = x.shape[1] - args.keep
    rows = [] if ckpt is None else _prefix_rows(restored_model(ckpt, cfg, test_ds, path).eval(), x, lengths, y, cut)
    xtr, _, ytr = _tensors(load_dataset(cfg.data.name, "train", root=cfg.data.root, **cfg.data.options))
    scale = max(1.0, float(xtr.max()))
    window = (_window_features(xtr, args.keep, scale), ytr, _window_features(x, args.keep, scale), y)
    rows.append((f"linear classifier on the last {args.keep} steps", _linear_reference(*window, cfg.model.n_classes)))
    rows.append((f"MLP on the last {args.keep} steps", _mlp_reference(*window, cfg.model.n_classes)))
    source = "config.yaml, references only" if ckpt is None else f"step {int(ckpt['step'])}"
    print(f"{args.run} ({source}), T = {x.shape[1]}, test accuracy (%):")
    for label, acc in rows:
        print(f"  {label:<45} {acc:6.2f}")


if __name__ == "__main__":
    main()
