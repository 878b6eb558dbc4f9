"""`auxrnn data {fetch,verify,info} NAME`: get a dataset into the data root, check it, describe it."""
from __future__ import annotations

import argparse
import logging

from auxrnn.cli import StderrHandler


def _number(text: str) -> int | float:
    """A count ("100") or a fraction ("0.2")."""
    try:
        return int(text)
    except ValueError:
        return float(text)


_OPTION_FLAGS = {
    # flag dest -> (flag, type, help)
    "perm_seed": ("--perm-seed", int, "pmnist: seed of the fixed pixel permutation (default 0)"),
    "grayscale": ("--grayscale", None, "cifar10: integer luminance instead of RGB"),
    "side": ("--side", int, "stanforddogs: image side, one of 40 48 56 72 80 96 112 128"),
    "max_len": ("--max-len", int, "dbpedia/csv: keep the first N bytes of each document"),
    "folder": ("--folder", str, "idx/csv: folder holding the files"),
    "n_classes": ("--n-classes", int, "csv/arrays: number of classes (default: inferred)"),
    "length": ("--length", int, "copy/adding: sequence length"),
    "size": ("--size", int, "copy/adding: number of items"),
    "seed": ("--seed", int, "copy/adding: generator seed"),
    "path": ("--path", str, "arrays: a folder of .npy files or an .npz file (docs/data.md)"),
    "test_size": ("--test-size", _number, "arrays: test part of a single x/y, a fraction (0.2) or a count (100)"),
    "split_seed": ("--split-seed", int, "arrays: seed of that split (default 0; never the training seed)"),
    "bins": ("--bins", int, "arrays: tokens per channel of real inputs (default 256)"),
    "quantiser": ("--quantiser", str,
                  "arrays: quantile (equal-frequency, default), uniform, or none (real values, standardised)"),
    "max_vocab": ("--max-vocab", int, "arrays: integers in 0..N-1 are used as tokens (default 4096; 0 quantises)"),
    "local_dir": ("--local-dir", str, "mnist/pmnist: a folder with the IDX files; dbpedia: train.csv/test.csv or the archive; stanforddogs: images.tar and lists.tar"),
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (mnist, pmnist, cifar10, stanforddogs, dbpedia, idx, csv, copy, adding, arrays)")
    p.add_argument("--root", default=None, help="data root (default: $AUXRNN_DATA, else the user cache folder)")
    p.add_argument("--split", choices=("train", "test", "both"), default="both")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    for dest, (flag, typ, help_) in _OPTION_FLAGS.items():
        if typ is None:
            p.add_argument(flag, dest=dest, action="store_true", default=None, help=help_)
        else:
            p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)


def _options(args: argparse.Namespace) -> dict:
    from auxrnn.data import dataset_options

    given = {k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k, None) is not None}
    allowed = set(dataset_options(args.name))
    bad = sorted(k for k in given if k not in allowed)
    if bad:
        flags = ", ".join(_OPTION_FLAGS[k][0] for k in bad)
        raise ValueError(f"dataset {args.name!r} does not take {flags}")
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
    for name, func, help_ in (
        ("fetch", cmd_fetch, "download (or copy from a local folder), verify and cache a dataset"),
        ("verify", cmd_verify, "check a cached dataset's checksums and contents without downloading"),
        ("info", cmd_info, "sizes, classes, sequence lengths and where the files live (never downloads)"),
    ):
        sp = sub.add_parser(name, help=help_)
        _add_common(sp)
        sp.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
