"""Help that answers: a one-line description, the defaults, an example; ``--version``."""

import pytest

import tinytorch
from tinytorch.cli.main import build_parser, main

COMMANDS = ["demo", "check", "bench", "profile", "convert", "verify"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_help_has_description_defaults_and_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.endswith(".")
    assert "\n" not in description
    assert "examples:\n" in out
    assert f"  tinytorch-data {command}" in out.split("examples:\n")[1]
    if command not in ("check", "verify", "convert"):  # the others have options with defaults
        assert "(default: " in out


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "imagefolder"])
def test_each_convert_source_has_its_help(source, capsys):
    assert main(["convert", source, "--help"]) == 0
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.endswith(".")
    assert "\n" not in description
    assert f"  tinytorch-data convert {source}" in out.split("examples:\n")[1]
    assert "(default: " in out


@pytest.mark.parametrize("command", COMMANDS)
def test_summary_in_the_command_list_is_one_line(command):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    summary = next(c.help for c in subparsers._choices_actions if c.dest == command)
    assert len(f"    {command:<10}{summary}") <= 78, summary  # one line of an 80-column terminal


def test_defaults_are_shown_with_their_values(capsys):
    main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: 64 128 256 512 1024)" in out
    assert "(default: ./data)" in out
    main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 15)" in out  # --epochs
    assert "(default: 0)" in out  # --seed: a default of 0 is still shown


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"tinytorch-data {tinytorch.__version__} from ")
    assert "numpy" in out


def test_convert_accepts_the_same_mirror_options_as_demo(capsys):
    for command in (["demo"], ["convert", "cifar10"]):
        main([*command, "--help"])
        out = capsys.readouterr().out
        assert "--url URL" in out
        assert "--md5 MD5" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: tinytorch-data" in capsys.readouterr().out
