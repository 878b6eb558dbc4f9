"""`auxrnn data {fetch,verify,info} NAME`: get a dataset into the data root, check it, describe it."""
from __future__ import annotations

import argparse
import logging

from auxrnn.cli import StderrHandler


def _flags() -> dict[str, tuple[str, bool, str]]:
    """Every registered dataset's `cli_flags`: option -> (flag, whether it is a switch, help naming the datasets).

    Values stay strings here; `load_dataset` converts them to the option's type, as it does `data.options.*`.
    """
    from auxrnn.data.datasets import DATASETS

    helps: dict[str, dict[str, list[str]]] = {}  # option -> help text -> the datasets that give it
    switch: dict[str, bool] = {}
    for name, cls in DATASETS.items():
        defaults = cls.option_defaults()
        for option, text in cls.cli_flags.items():
            helps.setdefault(option, {}).setdefault(text, []).append(name)
            switch[option] = isinstance(defaults[option], bool)
    return {option: ("--" + option.replace("_", "-"), switch[option],
                     "; ".join(f"{'/'.join(names)}: {text}" for text, names in by_text.items()))
            for option, by_text in helps.items()}


def _add_common(p: argparse.ArgumentParser, flags: dict[str, tuple[str, bool, str]]) -> None:
    from auxrnn.data.datasets import DATASETS

    p.add_argument("name", help=f"dataset name ({', '.join(DATASETS)})")
    p.add_argument("--root", default=None, help="data root (default: $AUXRNN_DATA, else the user cache folder)")
    p.add_argument("--split", choices=("train", "test", "both"), default="both")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    for dest, (flag, is_switch, help_) in flags.items():
        if is_switch:
            p.add_argument(flag, dest=dest, action="store_true", default=None, help=help_)
        else:
            p.add_argument(flag, dest=dest, default=None, help=help_)


def _options(args: argparse.Namespace) -> dict:
    from auxrnn.data import dataset_options

    flags = _flags()
    given = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    allowed = set(dataset_options(args.name))
    bad = sorted(k for k in given if k not in allowed)
    if bad:
        raise ValueError(f"dataset {args.name!r} does not take {', '.join(flags[k][0] for k in bad)}")
    return given


def _splits(args) -> list[str]:
    return ["train", "test"] if args.split == "both" else [args.split]


def _setup_logging() -> None:
    logger = logging.getLogger("auxrnn.data")
    if not logger.handlers:
        h = StderrHandler()
        h.setFormatter(logging.Formatter("auxrnn data: %(levelname)s: %(message)s"))
        logger.addHandler(h)
        logger.setLevel(logging.INFO)


def cmd_fetch(args: argparse.Namespace) -> int:
    from auxrnn.data import load_dataset

    _setup_logging()
    opts = _options(args)
    for split in _splits(args):
        ds = load_dataset(args.name, split, root=args.root, **opts)
        print(f"{args.name} {split}: {len(ds)} items at {ds.location}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from auxrnn.data import MNIST, load_dataset

    import torch

    opts = _cached_only(args)
    states: list[dict] = []
    for split in _splits(args):
        ds = load_dataset(args.name, split, root=args.root, **opts)
        if isinstance(ds, MNIST):
            for fname, sha in ds.resources:
                print(f"ok  {ds.raw_folder / fname}  sha256 {sha}")
        x, y = ds[0]
        print(f"ok  {args.name} {split}: {len(ds)} items, first item x {tuple(x.shape)} {x.dtype}, y {y}")
        states.append(ds.data_state())
    if any(states):
        same = len(states) < 2 or (states[0].keys() == states[1].keys()
                                   and all(torch.equal(states[0][k], states[1][k]) for k in states[0]))
        if not same:
            raise ValueError(f"{args.name}: the train and test splits disagree on their data state")
        what = ", ".join(f"{k} {tuple(v.shape)}" for k, v in states[0].items())
        print(f"ok  {args.name}: data state ({what}){' identical in both splits' if len(states) == 2 else ''}")
    return 0


def _cached_only(args: argparse.Namespace) -> dict:
    """The dataset options with downloading off: `data info` and `data verify` read what is cached, never fetch."""
    from auxrnn.data import dataset_options

    opts = _options(args)
    if "download" in dataset_options(args.name):
        opts["download"] = False
    return opts


def cmd_info(args: argparse.Namespace) -> int:
    from auxrnn.data import NumpyArrays, load_dataset

    _setup_logging()
    opts = _cached_only(args)
    first, last = True, None
    for split in _splits(args):
        ds = load_dataset(args.name, split, root=args.root, **opts)
        info = ds.info
        if first:
            print(f"dataset:   {info.name}")
            print(f"classes:   {info.n_classes}")
            print(f"channels:  {info.channels}")
            print(f"location:  {ds.location}")
            first = False
        kind = "variable, longest" if info.variable_length else "fixed"
        print(f"{split + ':':<10} {len(ds)} items, sequence length {info.seq_len} ({kind})")
        if isinstance(ds, NumpyArrays):
            _arrays_split(ds)
            last = ds
    if last is not None:
        _arrays_tokens(last)
    return 0


def _arrays_split(ds) -> None:
    """Classes with counts, and lengths when the files give them, of one split of `arrays`."""
    counts = ds.class_counts()
    print(f"{'':<10} classes " + ", ".join(f"{c}: {int(n)}" for c, n in enumerate(counts)))
    if ds.info.variable_length:
        n = ds.lengths()
        print(f"{'':<10} lengths min {int(n.min())}, mean {n.mean():.1f}, max {int(n.max())} (of T = {ds.steps})")


def _arrays_tokens(ds) -> None:
    """The inputs and how `arrays` turns them into tokens (the same for both splits: fitted on train)."""
    print(f"layout:    {ds.layout}" + (f" (test_size={ds.test_size}, split_seed={ds.split_seed})"
                                       if ds.layout == "single" else ""))
    print(f"files:     {', '.join(ds.file_names)}")
    print(f"inputs:    {ds.n_channels} channel{'s' if ds.n_channels > 1 else ''} of {ds.x_dtype}, T = {ds.steps}")
    if ds.standardiser is not None:
        print("values:    real, standardised per channel (quantiser=none), fitted on the train split only")
        for c, (m, sd) in enumerate(zip(ds.standardiser.mean, ds.standardiser.std)):
            print(f"{'':<10} channel {c}: mean {m:.6g}, std {sd:.6g}")
        return
    if ds.quantiser is None:
        print(f"tokens:    integers used as tokens (max_vocab={ds.max_vocab}); vocabulary per channel = "
              f"largest training value + 1: {', '.join(str(int(v)) for v in ds.vocab)}")
        return
    q = ds.quantiser
    print(f"quantiser: {q.kind}, {q.bins} bins per channel, fitted on the train split only")
    for c, (lo, med, hi) in enumerate(q.summary()):
        print(f"{'':<10} channel {c}: edges min {lo:.6g}, median {med:.6g}, max {hi:.6g}")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch, verify and describe datasets")
    sub = p.add_subparsers(dest="data_command")
    flags = _flags()
    for name, func, help_ in (
        ("fetch", cmd_fetch, "download (or copy from a local folder), verify and cache a dataset"),
        ("verify", cmd_verify, "check a cached dataset's checksums and contents without downloading"),
        ("info", cmd_info, "sizes, classes, sequence lengths and where the files live (never downloads)"),
    ):
        sp = sub.add_parser(name, help=help_)
        _add_common(sp, flags)
        sp.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
