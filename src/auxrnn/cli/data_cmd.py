"""`auxrnn data {fetch,verify,info} NAME`: get a dataset into the data root, check it, describe it."""
from __future__ import annotations

import argparse
import logging
import sys

_OPTION_FLAGS = {
    # flag dest -> (flag, type, help)
    "perm_seed": ("--perm-seed", int, "pmnist: seed of the fixed pixel permutation (default 0)"),
    "grayscale": ("--grayscale", None, "cifar10: integer luminance instead of RGB"),
    "side": ("--side", int, "stanforddogs: image side, one of 40 48 56 72 80 96 112 128"),
    "max_len": ("--max-len", int, "dbpedia/csv: keep the first N bytes of each document"),
    "folder": ("--folder", str, "idx/csv: folder holding the files"),
    "n_classes": ("--n-classes", int, "csv: number of classes (default: inferred)"),
    "length": ("--length", int, "copy/adding: sequence length"),
    "size": ("--size", int, "copy/adding: number of items"),
    "seed": ("--seed", int, "copy/adding: generator seed"),
    "local_dir": ("--local-dir", str, "mnist/pmnist: a folder with the IDX files; dbpedia: train.csv/test.csv or the archive; stanforddogs: images.tar and lists.tar"),
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset name (mnist, pmnist, cifar10, stanforddogs, dbpedia, idx, csv, copy, adding)")
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
        h = logging.StreamHandler(sys.stderr)
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

    opts = _options(args)
    if "download" in _accepted(args.name):
        opts["download"] = False
    for split in _splits(args):
        ds = load_dataset(args.name, split, root=args.root, **opts)
        if isinstance(ds, MNIST):
            for fname, sha in ds.resources:
                print(f"ok  {ds.raw_folder / fname}  sha256 {sha}")
        x, y = ds[0]
        print(f"ok  {args.name} {split}: {len(ds)} items, first item x {tuple(x.shape)} {x.dtype}, y {y}")
    return 0


def _accepted(name: str) -> list[str]:
    from auxrnn.data import dataset_options

    return dataset_options(name)


def cmd_info(args: argparse.Namespace) -> int:
    from auxrnn.data import load_dataset

    _setup_logging()
    opts = _options(args)
    first = True
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
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch, verify and describe datasets")
    sub = p.add_subparsers(dest="data_command")
    for name, func, help_ in (
        ("fetch", cmd_fetch, "download (or copy from a local folder), verify and cache a dataset"),
        ("verify", cmd_verify, "check a cached dataset's checksums and contents without downloading"),
        ("info", cmd_info, "sizes, classes, sequence lengths and where the files live"),
    ):
        sp = sub.add_parser(name, help=help_)
        _add_common(sp)
        sp.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
