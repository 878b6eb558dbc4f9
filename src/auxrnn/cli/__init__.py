"""Command-line entry point: `auxrnn {train,eval,predict,data,bench,reproduce,presets}`.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its parser
and sets `func`; this file only dispatches. The CLI is the only place that prints.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

import auxrnn

_COMMANDS = ("train", "eval", "predict", "data", "bench", "reproduce", "presets")

DESCRIPTION = """\
Train recurrent networks on long sequences with auxiliary losses (Trinh et al., ICML 2018): an LSTM that
reconstructs (r-LSTM) or predicts (p-LSTM) a subsequence at random anchors, with truncated gradients.
The main job is `auxrnn train`: with no arguments, an r-LSTM on permuted MNIST in minutes on a CPU."""

EPILOG = """\
a run is a preset plus key=value overrides:
  auxrnn presets                             every preset, one line each
  auxrnn presets mnist_rlstm_t300            one preset, resolved (every key)
  auxrnn train --help-keys                   every config key: type, default, help
  auxrnn train --preset mnist_rlstm_t300 optim.lr=5e-4 train.device=cuda
  auxrnn train --check model.hidden=64       validate and print the config, train nothing
  auxrnn train --resume runs/NAME            continue a stopped run exactly
  auxrnn eval runs/NAME                      score a run's checkpoint on the test set
  auxrnn predict runs/NAME --data x.npy --out p.csv   probabilities and labels for raw inputs
  auxrnn reproduce table2-mnist-cpu          one of the paper's tables, beside the paper's numbers

`auxrnn COMMAND --help` describes each command. README.md and docs/ describe the method and the results."""


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record (redirected or captured streams too)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler assigns it; the current sys.stderr is always used
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auxrnn", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"auxrnn {auxrnn.__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"auxrnn.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # key=value overrides may stand anywhere, also after options (`eval RUN --data idx data.root=...`)
    for i, tok in enumerate(argv):  # `--optim.lr 1e-3`: a config key written as an option
        m = re.fullmatch(r"--([a-z_]+\.[a-z_.]+)(?:=(.*))?", tok)
        if m:
            value = m.group(2) if m.group(2) is not None else (argv[i + 1] if i + 1 < len(argv) else "VALUE")
            parser.error(f"{tok} is not an option: config keys are overrides, write {m.group(1)}={value}")
    args, rest = parser.parse_known_args(argv)
    if rest:
        if hasattr(args, "overrides") and all("=" in tok and not tok.startswith("-") for tok in rest):
            args.overrides = list(args.overrides or []) + rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not getattr(args, "func", None):  # bare `auxrnn`: say what there is rather than start a training
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except BrokenPipeError:  # `auxrnn presets | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # what a shell reports for a process ended by SIGPIPE
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:  # a full disk, a read-only folder: one line
        if getattr(args, "debug", False):
            raise
        what = f"out of memory ({type(exc).__name__}: {exc})" if isinstance(exc, MemoryError) else exc
        print(f"auxrnn {args.command}: error: {what}", file=sys.stderr)
        return 2
