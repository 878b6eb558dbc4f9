"""CPU settings of a run: denormals flushed while training, restored afterwards."""
import torch

from auxrnn.train.cpu import flush_denormals, flushing_denormals


def test_flush_denormals_turns_the_flag_on_inside_and_restores_it():
    assert not flushing_denormals()
    with flush_denormals("cpu"):
        assert flushing_denormals()
        assert float(torch.tensor([1e-40]) * 2.0) == 0.0
        with flush_denormals("cpu"):  # nested: the inner block leaves the outer one's flag alone
            pass
        assert flushing_denormals()
    assert not flushing_denormals()
    assert float(torch.tensor([1e-40]) * 2.0) > 0.0


def test_flush_denormals_leaves_other_devices_alone():
    with flush_denormals("meta"):
        assert not flushing_denormals()


def test_automatic_threads_share_the_usable_cores_among_the_processes(monkeypatch):
    from auxrnn.train import cpu

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    assert cpu.choose_threads(0) == (8, "automatic: 8 cores / 1 process")
    assert cpu.choose_threads(0, processes=3) == (2, "automatic: 8 cores / 3 processes")
    assert cpu.choose_threads(0, processes=16)[0] == 1  # never 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: 4 ranks on this host
    assert cpu.choose_threads(0)[0] == 2
    assert cpu.choose_threads(3) == (3, "set")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's explicit choice wins and is named
    assert cpu.choose_threads(3) == (5, "OMP_NUM_THREADS")


def test_usable_cores_follow_the_affinity_not_the_machine():
    import os

    from auxrnn.train.cpu import usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0))
