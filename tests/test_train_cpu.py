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
