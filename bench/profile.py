"""Optional py-spy sampling of a contender's processes while its levels run.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``);
``hot_spots`` turns them into the top functions by own time and by inclusive time.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


class PySpy:
    """``py-spy record`` on one pid (and its children) until the block ends."""

    def __init__(self, pid: int, out: Path, rate: int = 250, subprocesses: bool = True) -> None:
        self.pid, self.out, self.rate, self.subprocesses = pid, out, rate, subprocesses
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy")
        cmd = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw"]
        cmd += ["--output", str(self.out), "--nonblocking", "--threads"]
        if self.subprocesses:
            cmd.append("--subprocesses")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def hot_spots(raw: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Top frames by own (leaf) samples and by inclusive samples, in percent of all samples."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    by_process: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            n = int(count)
            frames = stack.split(";")
            total += n
            by_process[frames[0][:80]] += n
            own[_short(frames[-1])] += n
            for f in {_short(f) for f in frames[1:]}:
                incl[f] += n
    if not total:
        return {"own": [], "inclusive": [], "process": []}

    def pct(c: collections.Counter[str], k: int) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(k)]

    return {"own": pct(own, top), "inclusive": pct(incl, top), "process": pct(by_process, 10)}


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines split one function apart."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name
