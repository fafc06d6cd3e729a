"""A doctor check's verdict, and the report an operator reads (text) or a program parses (JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
GIB = 1024**3
MIB = 1024**2


@dataclass
class Check:
    name: str
    status: Status
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in ("ok", "warn", "fail")}

    def to_dict(self) -> dict[str, Any]:
        return {"ok": not self.failed, "summary": self.counts(), "checks": [asdict(c) for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_text(self) -> str:
        label = {"ok": "ok", "warn": "warn", "fail": "FAIL"}
        lines = []
        for c in self.checks:
            lines.append(f"{label[c.status]:<5} {c.name:<13} {c.message}")
            if c.fix and c.status != "ok":
                lines.append(f"{'':<5} {'':<13} fix: {c.fix}")
        n = self.counts()
        lines.append(f"doctor: {n['ok']} ok, {n['warn']} warnings, {n['fail']} failed")
        return "\n".join(lines)
