"""The command line in the test's process, through click's ``CliRunner`` (the same ``main``
the script calls), and the one way it fails: a prefixed line on stderr, no traceback."""

from __future__ import annotations

from click.testing import CliRunner, Result

from vllm_mcp.cli import cli

PREFIX = "vllm-mcp: "


def invoke(*args: str, **env: str) -> Result:
    """``vllm-mcp ARGS`` with ``env`` set for the call."""
    return CliRunner().invoke(cli, list(args), env=env or None)


def assert_error(result: Result, code: int, *expected: str) -> list[str]:
    """Exit ``code``, nothing on stdout, every stderr line prefixed, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(PREFIX) for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return lines
