"""The command line's top level: a command line builds only the command it runs, and help and
usage errors still list every command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from keyless.cli.main import COMMANDS, _named_command, main

NAMES = list(COMMANDS)


def test_a_command_line_imports_only_its_command() -> None:
    code = (
        "import sys\n"
        "from keyless.cli.main import main\n"
        "try:\n"
        "    main(['-v', 'verify', '--help'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code)\n"
        "print(sorted(m for m in sys.modules if m.startswith('keyless.cli.commands.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-2:] == [
        "0",
        "['keyless.cli.commands._images', 'keyless.cli.commands._keys', "
        "'keyless.cli.commands.verify']",
    ]


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["verify", "--bundle", "b", "a.txt"], "verify"),
        (["-v", "sign-bundle", "--help"], "sign_bundle"),
        (["--verbose", "policy", "check"], "policy"),
        (["sign_bundle"], None),  # not a command name: argparse says so, listing them all
        (["-h", "verify"], None),  # the top level's help
        (["--verb", "verify"], None),  # an abbreviated flag: argparse decides
        (["nope"], None),
        ([], None),
        (["public-key", "--key", "k.pub"], "keys"),  # one module, several commands
    ],
)
def test_which_command_a_line_names(argv: list[str], module: str | None) -> None:
    assert _named_command(argv) == module


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-h"])
    assert info.value.code == 0
    assert re.findall(r"^ {4}(\S+)", capsys.readouterr().out, re.MULTILINE) == NAMES


@pytest.mark.parametrize(
    ("argv", "given"),
    [(["nope"], "nope"), (["sign_bundle"], "sign_bundle"), (["-v", "nope", "--help"], "nope")],
)
def test_an_unknown_command_is_a_usage_error_listing_every_command(
    argv: list[str], given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    choices = ", ".join(f"'{name}'" for name in NAMES)
    expected = f"argument COMMAND: invalid choice: '{given}' (choose from {choices})"
    assert expected in capsys.readouterr().err
