"""Run `mailvet validate --checks syntax` in-process through Typer's CliRunner."""

from __future__ import annotations

from typer.testing import CliRunner

from mailvet.cli import app


def validate(runner: CliRunner, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", *args, "--checks", "syntax"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output
