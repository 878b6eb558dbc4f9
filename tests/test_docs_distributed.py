"""docs/distributed.md and the SLURM example: the commands they give are the ones the tests run, and the
batch script is valid bash that starts one torchrun agent per node."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "distributed.md").read_text()
SBATCH = ROOT / "examples" / "slurm" / "train.sbatch"


def test_the_multi_node_command_and_its_links_are_in_place():
    assert re.search(r"torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint \S+:\d+", DOC)
    for link in re.findall(r"\]\(([^)#]+)", DOC):
        if "://" not in link:
            assert (ROOT / "docs" / link).resolve().exists(), link
    readme = (ROOT / "README.md").read_text()
    assert "(docs/distributed.md)" in readme and "(examples/slurm/train.sbatch)" in readme


def test_the_slurm_script_is_valid_bash_and_uses_what_slurm_sets():
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    text = SBATCH.read_text()
    for var in ("SLURM_JOB_NODELIST", "SLURM_NNODES", "SLURM_GPUS_ON_NODE", "SLURM_JOB_ID"):
        assert f"${var}" in text or f"${{{var}" in text, var
    assert "scontrol show hostnames" in text and re.search(r"srun .*torchrun", text)
    assert "--ntasks-per-node=1" in text  # one agent per node: torchrun starts the ranks
