"""Command-line entry point: `auxrnn {train,eval,predict,data,bench,reproduce}`.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its parser
and sets `func`; this file only dispatches. The CLI is the only place that prints.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

_COMMANDS = ("train", "eval", "predict", "data", "bench", "reproduce")


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
    parser = argparse.ArgumentParser(prog="auxrnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    for name in _COMMANDS:
        importlib.import_module(f"auxrnn.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        argv = ["train"]  # the default job: train the default preset on MNIST
    # key=value overrides may stand anywhere, also after options (`eval RUN --data idx data.root=...`)
    args, rest = parser.parse_known_args(argv)
    if rest:
        if hasattr(args, "overrides") and all("=" in tok and not tok.startswith("-") for tok in rest):
            args.overrides = list(args.overrides or []) + rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"auxrnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
