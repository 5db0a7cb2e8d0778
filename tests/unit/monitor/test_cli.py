"""Every CLI command answers --help; usage errors exit 2."""

from __future__ import annotations

import pytest

from monitor.cli import build_parser, main

COMMANDS = [
    [], ["check-config"], ["replay"], ["run"], ["users"], ["users", "add"],
    ["config-reference"], ["models"], ["models", "list"], ["models", "verify"],
    ["models", "import"], ["models", "export"],
]  # fmt: skip


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "hallmonitor")
def test_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hallmonitor")


def test_missing_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay"])
    assert exc.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_all_commands_listed() -> None:
    text = build_parser().format_help()
    for name in (
        "check-config",
        "replay",
        "run",
        "users",
        "config-reference",
        "models",
    ):
        assert name in text
