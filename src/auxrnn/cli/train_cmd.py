"""`auxrnn train`: train (or resume) one run from a preset plus `key=value` overrides."""
from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from auxrnn.cli import StderrHandler

EPILOG = """examples:
  auxrnn train                                   # the default job: r-LSTM on MNIST, minutes on a CPU
  auxrnn train --preset mnist_rlstm_t300 train.device=cuda
  auxrnn train --preset pmnist_lstm_full optim.lr=5e-4 train.out=runs/pm
  auxrnn train --resume runs/pm                  # continue exactly where it stopped
  torchrun --nproc_per_node 4 -m auxrnn train --preset cifar10_rlstm_t300 train.out=runs/c10
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume a run", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with dotted keys, e.g. model.truncate=300 optim.lr=1e-3")
    p.add_argument("--preset", default=None, help="configs/NAME.yaml (default: 'default'), a path to a YAML file, or 'none' for the bare defaults")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last checkpoint (its config.yaml is used)")
    p.add_argument("--until-step", type=int, default=None, metavar="N",
                   help="stop with a checkpoint once N global steps are done (train in slices)")
    p.add_argument("--check", action="store_true", help="validate and print the resolved config, then exit")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    root = logging.getLogger("auxrnn")
    if not root.handlers:
        h = StderrHandler()
        h.setFormatter(logging.Formatter("%(message)s" if rank == 0 else f"[rank {rank}] %(message)s"))
        root.addHandler(h)
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def run(args) -> int:
    from auxrnn import models
    from auxrnn.train.config import dump_yaml, fit_to_data, parse_overrides
    from auxrnn.train.loop import train
    from auxrnn.train.runs import new_run, resume_config

    setup_logging()
    overrides = parse_overrides(args.overrides)
    if args.resume is not None:
        if args.preset:
            raise ValueError("--resume takes the config from the run folder; drop --preset")
        run_dir = args.resume
        cfg = resume_config(run_dir, overrides)
    else:
        cfg, run_dir = new_run(args.preset or "default", overrides)
    master = int(os.environ.get("RANK", "0")) == 0
    if args.check:  # everything `train` checks before its first step, without reading data where possible
        from auxrnn.data import check_options, load_dataset, static_info

        cfg.data.options = check_options(cfg.data.name, cfg.data.options)
        info = static_info(cfg.data.name, cfg.data.options)
        if info is None:  # the files decide the shape (idx, csv folders)
            info = load_dataset(cfg.data.name, "train", root=cfg.data.root, **cfg.data.options).info
        fit_to_data(cfg, info)
        models.check(cfg.model, cfg.arch, info)
        print(dump_yaml(cfg), end="")
        return 0

    def announce(resolved) -> None:
        print(f"# auxrnn train: {'resuming ' + str(run_dir) if args.resume else 'run folder ' + str(run_dir)}")
        print(dump_yaml(resolved), end="", flush=True)

    summary = train(cfg, run_dir, resume=args.resume is not None, until_step=args.until_step, progress=args.progress,
                    on_start=announce)
    if master:
        if summary["status"] == "finished":
            print(f"test accuracy {summary['test_accuracy']:.2f}% ({summary['test_correct']}/{summary['test_count']}) "
                  f"after {summary['steps']} steps ({summary['epochs']:.2f} epochs), "
                  f"{summary['wall_seconds']:.0f} s on {summary['device']}; run folder {run_dir}")
    if summary["status"] == "signal":
        return 128 + int(signal.Signals[summary["signal"]])
    return 0
