"""Checkpoints: rotated on every save, verified on load (the checksum inside each file), and a damaged newest
one falls back to the previous."""
import hashlib
import logging
import zipfile

import pytest
import torch

from auxrnn.train import checkpoint
from auxrnn.train.checkpoint import CheckpointError


def _save(run, step):
    checkpoint.save(run / "checkpoints" / checkpoint.LAST, {"step": step, "model": {"w": torch.full((64,), float(step))}})


def test_each_save_keeps_the_previous_checkpoint_each_carrying_its_checksum(tmp_path):
    _save(tmp_path, 1)
    assert checkpoint.resume_point(tmp_path)[0]["step"] == 1
    _save(tmp_path, 2)
    _save(tmp_path, 3)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "prev.pt"]
    assert checkpoint.load(folder / "last.pt")["step"] == 3 and checkpoint.load(folder / "prev.pt")["step"] == 2
    assert torch.load(folder / "last.pt", weights_only=True)["step"] == 3  # still a plain torch.load file
    assert zipfile.ZipFile(folder / "last.pt").comment.startswith(b"auxrnn-sha256 ")


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip, lambda p: p.unlink()], ids=["truncated", "flipped", "deleted"])
def test_a_damaged_last_checkpoint_resumes_from_the_previous_one_with_a_warning(tmp_path, damage, caplog):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    last = tmp_path / "checkpoints" / "last.pt"
    damage(last)
    with caplog.at_level(logging.WARNING, logger="auxrnn.train"):
        ckpt, path = checkpoint.resume_point(tmp_path)
    assert ckpt["step"] == 1 and path.name == "prev.pt"
    assert "last.pt" in caplog.text and "prev.pt" in caplog.text


def test_a_flipped_byte_is_caught_by_the_checksum_even_where_torch_would_load(tmp_path):
    _save(tmp_path, 1)
    last = tmp_path / "checkpoints" / "last.pt"
    data = bytearray(last.read_bytes())
    i = bytes(data).rfind(torch.full((64,), 1.0).numpy().tobytes())  # inside the tensor's raw bytes
    data[i + 3] ^= 0x01
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        checkpoint.load(last)
    data[i + 3] ^= 0x01
    data[-1] ^= 0x01  # the checksum itself
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        checkpoint.load(last)


def test_no_loadable_checkpoint_is_one_clear_error_naming_both_files(tmp_path):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    for name in ("last.pt", "prev.pt"):
        _truncate(tmp_path / "checkpoints" / name)
    with pytest.raises(CheckpointError) as err:
        checkpoint.resume_point(tmp_path)
    msg = str(err.value)
    assert "last.pt" in msg and "prev.pt" in msg and "delete" in msg


def test_a_run_that_never_checkpointed_starts_from_zero_but_an_emptied_folder_is_refused(tmp_path):
    assert checkpoint.resume_point(tmp_path) == (None, None)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(CheckpointError, match="cannot resume"):
        checkpoint.resume_point(tmp_path)


def test_a_foreign_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save([1, 2, 3], bad)
    with pytest.raises(CheckpointError, match="x.pt has no checksum"):
        checkpoint.load(bad)
    (tmp_path / "x.pt.sha256").write_text(hashlib.sha256(bad.read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match="x.pt is not an auxrnn checkpoint"):
        checkpoint.load(bad)
