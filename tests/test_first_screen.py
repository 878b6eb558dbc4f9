"""What a user sees first: the run header, the step plan, the progress bar in a terminal, the curves' labels."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import sys
import termios
import threading

import matplotlib
import pytest

from auxrnn.cli import main
from conftest import tiny_args

matplotlib.use("Agg")

RUN = tiny_args(32, 8, "train.pretrain_steps=2", "train.steps=12", "train.eval_every=4", log_every=2)


def test_the_header_names_the_preset_chain_and_only_what_differs(tmp_path, capsys):
    assert main(["train", *RUN, f"train.out={tmp_path / 'run'}", "--no-progress"]) == 0
    out = capsys.readouterr().out
    head = out.split("test accuracy")[0].splitlines()
    assert head[0] == f"# auxrnn train: run folder {tmp_path / 'run'} (whole config: {tmp_path / 'run' / 'config.yaml'})"
    assert head[1] == "# preset none (the built-in defaults)"
    assert "model.n_classes: 8" in head and "data.name: copy" in head and "train.steps: 12" in head
    assert not any(line.startswith(("optim.", "arch.", "model.cell")) for line in head)  # defaults: not repeated
    assert len(head) < 30


def test_the_step_plan_says_that_pretraining_comes_on_top(tmp_path, capsys):
    assert main(["train", *RUN, f"train.out={tmp_path / 'run'}", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "14 steps in all: 12 of training plus 2 of pretraining (auxiliary loss only) before them" in err
    assert " 1 threads" not in err


def _train_on_a_pty(tmp_path, rows: int, cols: int) -> str:
    """`auxrnn train` in this process with stderr on a pty of the given size; what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stderr, sys.stderr = sys.stderr, open(slave, "w", buffering=1, closefd=False)
    try:
        assert main(["train", *RUN, f"train.out={tmp_path / 'run'}"]) == 0
    finally:
        sys.stderr.close()
        sys.stderr = stderr
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_evaluation_lines_on_a_terminal_start_on_a_line_of_their_own(tmp_path):
    text = _train_on_a_pty(tmp_path, 24, 100)
    assert "step/s" in text  # the bar was drawn
    for line in text.replace("\r\n", "\n").split("\n"):
        if "test accuracy" in line:  # the bar is erased (\r + blanks + \r) before each evaluation line
            assert line.rsplit("\r", 1)[-1].startswith("step "), repr(line)


def test_a_terminal_of_size_zero_gets_log_lines_as_they_happen(tmp_path):
    text = _train_on_a_pty(tmp_path, 0, 0)
    assert "step 2/14 pretrain loss" in text and "step 4 (epoch 1.00): test accuracy" in text


@pytest.mark.parametrize("low, high", [(2.0, 4.0), (0.05, 3.0)])
def test_the_loss_axis_reads_plain_numbers(low, high):
    import matplotlib.pyplot as plt

    from auxrnn.train.plot import plain_log_labels

    fig, ax = plt.subplots()
    ax.plot([0, 1], [low, high])
    ax.set_yscale("log")
    plain_log_labels(ax.yaxis)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert labels and not any("times" in s or "^" in s for s in labels), labels
    assert "3" in labels or "0.1" in labels


def test_plotting_is_switched_off_for_the_tests_and_on_by_default(tmp_path, monkeypatch):
    from auxrnn.train.plot import plot_run

    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 2.5}\n')
    assert os.environ["AUXRNN_PLOT"] == "0" and plot_run(tmp_path) is None  # conftest: no figure per test run
    monkeypatch.delenv("AUXRNN_PLOT")
    assert plot_run(tmp_path) == tmp_path / "curves.png" and (tmp_path / "curves.png").stat().st_size > 0
