"""`auxrnn predict`: class probabilities and labels of a trained run for raw inputs in a file."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict classes of raw inputs (.npy, .npz, .csv or IDX) with a trained run")
    p.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", type=Path, required=True, metavar="PATH",
                   help="raw inputs: .npy, .npz (x, optional lengths), .csv (one item per row) or an IDX file")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="FILE.npy: one structured array, np.load(FILE)['label'] (N,) int64 and ['probs'] (N, K) "
                        "float32; or FILE.csv: rows label,p0,...; written whole or not at all")
    p.add_argument("--checkpoint", default=None, choices=("last", "best"),
                   help="with a run folder: checkpoints/last.pt (default) or checkpoints/best.pt (train.keep_best)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=int, default=None,
                   help="items per batch (default the run's data.eval_batch_size)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads; 0 (default) = this process's share of the usable cores (OMP_NUM_THREADS wins)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from auxrnn.data.prediction_files import check_output, read_inputs, write_predictions
    from auxrnn.train.cpu import use_threads
    from auxrnn.train.trained import load

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} is invalid: give the items per batch, an integer >= 1")
    out = check_output(args.out)  # before any work
    use_threads(args.threads)
    model = load(args.target, args.checkpoint, device=args.device)
    x, lengths = read_inputs(args.data, documents=model.preparation.kind == "bytes",
                             channels=len(model.preparation.channels))
    try:
        pred = model.predict(x, lengths, batch_size=args.batch_size)
    except ValueError as exc:
        raise ValueError(f"{args.data}: {exc}") from None
    write_predictions(out, pred.probs, pred.labels)
    counts = np.bincount(pred.labels, minlength=model.n_classes)
    print(f"predicted {len(pred.labels)} items of {args.data} with {model.checkpoint} (step {model.step}); "
          f"labels {', '.join(f'{c}: {int(n)}' for c, n in enumerate(counts) if n)}; wrote {out}")
    return 0
