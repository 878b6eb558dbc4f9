"""`auxrnn bench`: step time and peak memory over a grid of models and sequence lengths."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time and memory of one training step per model and length")
    p.add_argument("--models", default="lstm-full,lstm-t300,lstm-infer,rlstm-1x600,rlstm-20x30,plstm-1x600",
                   help="comma-separated: lstm-full, lstm-t300, rlstm-1x600, rlstm-1x600-cpu (1 x 128 decoder), rlstm-20x30, plstm-1x600, "
                        "plstm-1x600-cpu (1 x 128 predictor), transformer "
                        "(the parameter-matched baseline; an out-of-memory length becomes an OOM row), "
                        "lstm-infer (no-grad inference: the floor under every truncated step)")
    p.add_argument("--lengths", default="784,1024,4096,16384", help="comma-separated sequence lengths T")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128 on CUDA, 16 on CPU)")
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when present)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per case (default 20 on CUDA, 3 on CPU)")
    p.add_argument("--concurrent", default="1",
                   help="comma-separated numbers of copies trained at once (own process each); "
                        "reports their summed steps/s, e.g. 1,2,4")
    p.add_argument("--threads", default="0",
                   help="comma-separated CPU threads per copy; 0 = automatic: the usable cores divided by the "
                        "copies (e.g. --concurrent 2 --threads 0,2 measures automatic against oversubscribed)")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="comma-separated: fp32, bf16 (autocast, as train.precision); the header says whether "
                        "this CPU computes bf16 natively")
    p.add_argument("--json", type=Path, default=None, help="also write the records as a JSON list here")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw step time and peak memory against T for each model (the cost panel of Fig. 3)")
    p.add_argument("--from", dest="source", type=Path, default=None, metavar="JSON",
                   help="print (and --plot) the records of an earlier --json file instead of measuring")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from auxrnn.bench import BenchSpec, add_speedups, run_grid
    from auxrnn.train import precision

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    batch = args.batch or (128 if cuda else 16)
    steps = args.steps or (20 if cuda else 3)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        lengths = [int(t) for t in args.lengths.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
    try:
        concurrent = [int(k) for k in args.concurrent.split(",") if k.strip()]
        threads = [int(k) for k in args.threads.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--concurrent and --threads must be comma-separated integers, got {args.concurrent!r} "
                         f"and {args.threads!r}") from None
    if batch < 1 or steps < 1 or not lengths or min(lengths) < 2 or not concurrent or min(concurrent) < 1:
        raise ValueError("--batch, --steps and --concurrent must be >= 1 and every length >= 2")
    if not threads or min(threads) < 0:
        raise ValueError("--threads must be >= 0 (0 = automatic)")
    precs = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precs or any(p not in ("fp32", "bf16") for p in precs):
        raise ValueError(f"--precisions takes fp32 and/or bf16, got {args.precisions!r}")
    specs = [BenchSpec(m, T, batch, device, steps=steps, warmup=1 if not cuda else 3, concurrent=k, threads=n,
                       precision=pr) for m in models for T in lengths for k in concurrent for n in threads for pr in precs]
    records = []
    if args.source is None:
        print(f"# bf16: {precision.describe('auto', torch.device(device))}")
    print(f"{'model':<16}{'T':>7}{'batch':>7}{'copies':>7}{'threads':>8}{'prec':>6}{'ms/step':>11}{'steps/s':>10}"
          f"{'peak MiB':>11}{'vs full':>9}  device")
    source = json.loads(args.source.read_text()) if args.source else None
    for rec in (source if source is not None else run_grid(specs)):
        records.append(rec)
        add_speedups(records)
        oom = rec.get("status") == "oom"
        ms = "OOM" if oom else f"{rec['step_ms']:.1f}"
        sps = "-" if oom else f"{rec['steps_per_s']:.2f}"
        mib = "-" if rec["peak_mib"] is None else f"{rec['peak_mib']:.0f}"
        vs = f"{rec['vs_full']:.2f}x" if "vs_full" in rec else "-"
        print(f"{rec['model']:<16}{rec['T']:>7}{rec['batch']:>7}{rec.get('concurrent', 1):>7}{rec.get('threads', '-'):>8}"
              f"{rec.get('precision', 'fp32'):>6}{ms:>11}{sps:>10}{mib:>11}{vs:>9}  {rec['device']}", flush=True)
    if args.plot:
        from auxrnn.bench import plot_records

        plot_records(records, args.plot)
        print(f"wrote {args.plot}")
    if args.json and source is None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))
        print(f"wrote {len(records)} records to {args.json}")
    return 0
