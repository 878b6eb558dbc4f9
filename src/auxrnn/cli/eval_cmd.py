"""`auxrnn eval`: test accuracy of a run's checkpoint (printed and written to eval.json)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run folder or checkpoint on a test set")
    p.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="data.* overrides (e.g. data.root=..., data.options.folder=..., data.eval_batch_size=...) "
                        "and train.device / train.precision")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="evaluate on another dataset with the same input and class shapes (e.g. idx); the run's "
                        "input options (perm_seed, side, delay, ...) are kept, a mismatch is refused")
    p.add_argument("--checkpoint", default=None, choices=("last", "best"),
                   help="with a run folder: checkpoints/last.pt (default) or checkpoints/best.pt (train.keep_best)")
    p.add_argument("--split", default="test", choices=("test", "train"), help="which split to score (default test)")
    p.add_argument("--out", type=Path, default=None, help="where to write eval.json (default: beside the run)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads; 0 (default) = this process's share of the usable cores (OMP_NUM_THREADS wins)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> int:
    from auxrnn.data import load_dataset
    from auxrnn.train import checkpoint, distributed
    from auxrnn.train.config import from_dict, parse_overrides, set_key
    from auxrnn.train.cpu import use_threads
    from auxrnn.train.evaluation import carried_options, device_name, evaluate, restored_model
    from auxrnn.train.runs import write_atomic

    use_threads(args.threads)
    path = checkpoint.find(args.target, args.checkpoint)
    ckpt = checkpoint.load(path)
    cfg = from_dict(ckpt["config"])
    if args.data:  # another dataset keeps the run's input preparation (a permutation, a resize, a delay)
        kept = carried_options(cfg.data.name, cfg.data.options, args.data)
        set_key(cfg, "data.name", args.data)
        for key, value in kept.items():
            set_key(cfg, f"data.options.{key}", value)
    for key, value in parse_overrides(args.overrides).items():
        if not (key.startswith("data.") or key in ("train.device", "train.precision")):
            raise ValueError(f"{key} cannot be overridden by eval: only data.*, train.device and train.precision")
        set_key(cfg, key, value)
    ds = load_dataset(cfg.data.name, args.split, root=cfg.data.root, **cfg.data.options)
    d = distributed.Dist(device=distributed.pick_device(cfg.train.device))
    model = restored_model(ckpt, cfg, ds, path, other_data=bool(args.data)).to(d.device)
    correct, count = evaluate(model, ds, cfg, d)
    result = {
        "checkpoint": str(path), "step": int(ckpt["step"]), "arch": cfg.arch.name, "dataset": cfg.data.name, "options": cfg.data.options,
        "split": args.split, "accuracy": 100.0 * correct / count, "correct": correct, "count": count,
        "device": device_name(d.device),
    }
    out = args.out
    if out is None:
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        out = folder / "eval.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1) + "\n")  # a live run folder: readers never see half of it
    print(f"{args.split} accuracy {result['accuracy']:.2f}% ({correct}/{count}) on {cfg.data.name} "
          f"at step {result['step']}; wrote {out}")
    return 0
