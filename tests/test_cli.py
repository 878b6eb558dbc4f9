"""The command line: dispatch, overrides anywhere, clear errors."""
import pytest

from auxrnn.cli import build_parser, main


@pytest.mark.parametrize("name", ["train", "eval", "predict", "data", "bench", "reproduce"])
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
