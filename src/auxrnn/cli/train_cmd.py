"""`auxrnn train`: train (or resume) one run from a preset plus `key=value` overrides."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from pathlib import Path

from auxrnn.cli import StderrHandler

EPILOG = """examples:
  auxrnn train                                   # the default job: r-LSTM on MNIST, minutes on a CPU
  auxrnn train --help-keys                       # every key=value override: type, default, meaning
  auxrnn presets                                 # every preset, one line each
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
    p.add_argument("--check", action="store_true",
                   help="validate (device included) and print the resolved config with its chain of bases, then exit")
    p.add_argument("--help-keys", action="store_true",
                   help="list every config key with its type, default and meaning, then exit")
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


def print_keys() -> None:
    """`--help-keys`: one line per key (its text is the comment of the dataclass field: auxrnn.train.keys)."""
    from auxrnn.train.keys import describe_keys

    rows = [(k.key, k.type, json.dumps(k.default), k.help) for k in describe_keys()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'key':<{widths[0]}}  {'type':<{widths[1]}}  {'default':<{widths[2]}}  meaning")
    for row in rows:
        print("  ".join(f"{v:<{w}}" for v, w in zip(row, widths)) + "  " + row[3])
    print("\nSet any key as key=value after `auxrnn train` (e.g. optim.lr=1e-3), or in a preset YAML file.")


def header(cfg, preset: str, run_dir: Path, resuming: bool) -> str:
    """What a run prints first: its folder, the preset chain and only the keys that differ from that chain
    (the overrides, and what the data filled in). The whole config is RUN/config.yaml, so it is not repeated."""
    import yaml

    from auxrnn.cli.presets_cmd import chain_line
    from auxrnn.train.config import RunConfig, build_config, flatten
    from auxrnn.train.runs import CONFIG_FILE

    first = (f"# auxrnn train: {'resuming' if resuming else 'run folder'} {run_dir} "
             f"(whole config: {run_dir / CONFIG_FILE})\n")
    if preset.lower() == "none":
        chain, base = "# preset none (the built-in defaults)\n", flatten(RunConfig().to_dict())
    else:
        try:  # a preset that trains nothing alone, or a resumed run's preset file no longer there: no diff
            chain, base = chain_line(preset), flatten(build_config(preset).to_dict())
        except (ValueError, OSError):
            return first
    ours = flatten(cfg.to_dict())
    differ = {k: v for k, v in ours.items() if k not in ("preset", "train.out") and (k not in base or base[k] != v)}
    if not differ:
        return first + chain
    # each value as YAML writes it inside a flow list ("[9]", "copy", "null"), one `key: value` line per key
    return (first + chain + "# differs from the preset (overrides, and what the data filled in):\n"
            + "".join(f"{k}: {yaml.safe_dump([v], default_flow_style=True, width=1000).strip()[1:-1]}\n"
                      for k, v in differ.items()))


def run(args) -> int:
    from auxrnn import models
    from auxrnn.cli.presets_cmd import chain_line
    from auxrnn.train.config import dump_yaml, fit_to_data, parse_overrides
    from auxrnn.train.loop import train
    from auxrnn.train.runs import elastic_restart, new_run, resume_config

    if args.help_keys:
        print_keys()
        return 0
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
    # After a failure torchrun (--max-restarts K) starts the same command again: the job continues from its
    # run folder by itself (new_run has checked that the checkpoint there is this job's).
    restarted = args.resume is None and not args.check and elastic_restart() > 0
    if restarted:
        logging.getLogger("auxrnn.train").info("torchrun restart %d: continuing %s from its last checkpoint",
                                               elastic_restart(), run_dir)
    if args.check:  # everything `train` checks before its first step, without reading data where possible
        from auxrnn.data import check_options, load_dataset, static_info
        from auxrnn.train.distributed import pick_device

        pick_device(cfg.train.device)  # train.device=cuda without CUDA fails here, not at the first step
        cfg.data.options = check_options(cfg.data.name, cfg.data.options)
        info = static_info(cfg.data.name, cfg.data.options)
        if info is None:  # the files decide the shape (idx, csv folders)
            info = load_dataset(cfg.data.name, "train", root=cfg.data.root, **cfg.data.options).info
        if cfg.data.keep_last:
            from auxrnn.data.sequences import last_steps_info

            info = last_steps_info(info, cfg.data.keep_last)
        fit_to_data(cfg, info)
        models.check(cfg.model, cfg.arch, info)
        chain = chain_line(args.preset or "default") if args.resume is None and args.preset != "none" else ""
        print(chain + dump_yaml(cfg), end="")
        return 0

    def announce(resolved) -> None:
        print(header(resolved, cfg.preset if args.resume else args.preset or "default", run_dir,
                     args.resume is not None), end="", flush=True)

    summary = train(cfg, run_dir, resume=args.resume is not None or restarted, until_step=args.until_step,
                    progress=args.progress, on_start=announce)
    if master:
        if summary["status"] == "finished":
            print(f"test accuracy {summary['test_accuracy']:.2f}% ({summary['test_correct']}/{summary['test_count']}) "
                  f"after {summary['steps']} steps ({summary['epochs']:.2f} epochs), "
                  f"{summary['wall_seconds']:.0f} s on {summary['device']}; run folder {run_dir}")
    if summary["status"] == "signal":
        return 128 + int(signal.Signals[summary["signal"]])
    return 0
