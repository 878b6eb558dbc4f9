"""The command line: dispatch, overrides anywhere, clear errors, discoverable presets and keys."""
import dataclasses
import subprocess
import sys

import pytest
import torch
import yaml

import auxrnn
from auxrnn.cli import build_parser, main
from auxrnn.train.config import all_keys, build_config, list_presets
from auxrnn.train.keys import describe_keys


@pytest.mark.parametrize("name", ["train", "eval", "predict", "data", "bench", "reproduce", "presets"])
def test_every_subcommand_is_registered_with_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: auxrnn {name} ")


def test_overrides_may_follow_options(monkeypatch):
    seen = {}
    monkeypatch.setattr("auxrnn.cli.eval_cmd.run", lambda args: seen.update(vars(args)) or 0)
    parser = build_parser()
    parser._subparsers._group_actions[0].choices["eval"].set_defaults(func=lambda a: seen.update(vars(a)) or 0)
    monkeypatch.setattr("auxrnn.cli.build_parser", lambda: parser)
    assert main(["eval", "runs/x", "--data", "idx", "data.root=/tmp/d", "data.eval_batch_size=7"]) == 0
    assert seen["overrides"] == ["data.root=/tmp/d", "data.eval_batch_size=7"]
    assert seen["data"] == "idx"


def test_unknown_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--nope"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"auxrnn {auxrnn.__version__}\n"


def test_top_level_help_is_written_for_users(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Command-line entry point" not in out  # not the module docstring
    for what in ("presets", "--help-keys", "--resume", "reproduce", "--version", "auxrnn train"):
        assert what in out


def test_bare_auxrnn_prints_the_help_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: auxrnn") and "auxrnn train" in out
    assert list(tmp_path.iterdir()) == []  # no runs/ folder: no training started


def test_presets_lists_every_preset_with_its_header_line(capsys):
    assert main(["presets"]) == 0
    lines = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()[:-2]}
    assert sorted(lines) == list_presets()
    assert lines["mnist_rlstm_t300"] == "Table 2, r-LSTM Truncate300 on sequential MNIST (784 steps, 256-level pixel tokens)."
    assert all(not name.startswith("_") for name in lines)  # bases are not runs


def test_every_preset_header_is_a_one_line_description():
    from auxrnn.cli.presets_cmd import preset_description

    for name in list_presets():
        text = preset_description(name)
        assert text.endswith(".") and 20 <= len(text) <= 130, f"{name}: {text!r}"


def test_presets_name_prints_it_resolved(capsys):
    assert main(["presets", "mnist_rlstm_t300"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "# Table 2, r-LSTM Truncate300 on sequential MNIST (784 steps, 256-level pixel tokens)."
    assert out.splitlines()[1].startswith("# preset mnist_rlstm_t300")
    assert yaml.safe_load(out) == build_config("mnist_rlstm_t300").to_dict()
    assert main(["presets", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_help_keys_lists_every_key_with_type_default_and_help(capsys):
    assert main(["train", "--help-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and "." in line.split()[0]}
    assert sorted(rows) == sorted(k for k in all_keys() if k != "preset")
    assert rows["optim.lr"].split()[1:3] == ["float", "0.001"] and "peak learning rate" in rows["optim.lr"]
    assert "[adam | rmsprop]" in rows["optim.optimizer"]
    for k in describe_keys():  # one line of help for every key, from the trailing comment of its field
        assert k.help and "#" not in k.help, k.key


def test_help_keys_text_is_the_dataclass_comment():
    @dataclasses.dataclass
    class Probe:
        knob: int = 3                  # what the knob does (decision X1)
        bare: float = 0.5

    assert [(k.key, k.type, k.default, k.help) for k in describe_keys({"probe": Probe})[1:]] == [
        ("probe.knob", "int", 3, "what the knob does (decision X1)"), ("probe.bare", "float", 0.5, "")]


@pytest.mark.parametrize("argv", [["train", "--optim.lr", "1e-3"], ["train", "--optim.lr=1e-3", "--check"]])
def test_a_key_written_as_an_option_gets_the_override_spelling(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "write optim.lr=1e-3" in capsys.readouterr().err


def test_check_refuses_cuda_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--check", "train.device=cuda"]) == 2
    err = capsys.readouterr().err
    assert "train.device='cuda' but CUDA is not available" in err and "Traceback" not in err
    assert main(["train", "--check", "train.device=cpu"]) == 0


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_traceback():
    """`auxrnn presets | head -1`: the closed pipe ends the command quietly (exit 141, as SIGPIPE would)."""
    proc = subprocess.Popen([sys.executable, "-m", "auxrnn", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
