"""examples/own_model.py, the library quick start, runs end to end at a tiny size on the real MNIST files."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_formats import have_real_mnist

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"


@pytest.mark.slow
@pytest.mark.skipif(not have_real_mnist(), reason="set AUXRNN_MNIST_DIR to a folder with the real MNIST files")
def test_own_model_example_trains_and_ends_with_the_test_accuracy_line(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "3", "--batch", "8", "--test-size", "50",
                           "--root", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("step 0: loss ")
    assert re.fullmatch(r"test accuracy \d+\.\d\d% \(50 test images, 3 steps, \d+ s\)", lines[-1]), lines[-1]


def test_quick_start_of_the_docs_is_the_examples_model():
    """docs/library.md's quick start and the example build the same kind of model from the user's parts."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "library.md").read_text()
    code = EXAMPLE.read_text()
    for part in ("encoder=nn.Linear(", "core=nn.LSTM(", "num_layers=2", "head=nn.Linear(", "ReconstructValues("):
        assert part in docs and part in code, part
