"""Unit tests of the load status line of `chat` and `doctor --smoke`."""

from __future__ import annotations

import io

from vllm_mcp.cli.progress import StatusLine, describe


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def loading(phase: str, phase_s: float, load_s: float) -> dict[str, object]:
    return {"state": "loading", "phase": phase, "phase_s": phase_s, "load_s": load_s}


def test_on_a_terminal_one_line_is_rewritten_in_place() -> None:
    out = Terminal()
    line = StatusLine(out)
    line(loading("compiling", 3, 50))
    line(loading("compiling", 4, 51))
    line.done()
    line.done()  # a second end writes nothing more
    assert out.getvalue() == (
        "\r\033[Kvllm-mcp: compiling the model, 3 s so far (load: 50 s)"
        "\r\033[Kvllm-mcp: compiling the model, 4 s so far (load: 51 s)\n"
    )


def test_elsewhere_a_plain_line_per_phase() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    for status in (loading("importing", 1, 1), loading("importing", 2, 2), {"state": "failed", "load_s": 9}):
        line(status)
    line.done()
    assert out.getvalue().splitlines() == [
        "vllm-mcp: importing vLLM, 1 s so far (load: 1 s)",
        "vllm-mcp: model failed after 9 s",
    ]


def test_a_phase_this_client_does_not_know_is_shown_by_name() -> None:
    assert describe(loading("quantizing", 2, 7)) == "quantizing, 2 s so far (load: 7 s)"
