"""``python -m bench.docs RESULT.json DOC.md``: fill a doc's generated section from one bench run.

The section between ``<!-- bench:RUN begin -->`` and ``<!-- bench:RUN end -->`` (RUN = the
run's label) is replaced with the run's machine and load, the side-by-side table, the targets
and the round trips; the rest of the document is left as written. Rerunning replaces it again.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench import report


def section(results: dict[str, Any]) -> str:
    m, w = results["meta"], results["workload"]
    cs = w["concurrencies"]
    load = [
        f"{s['load']['other_cpu_pct']:.0f}"
        for res in results["contenders"].values()
        for levels in res.get("levels", {}).values()
        for s in levels
        if s["load"].get("other_cpu_pct") is not None
    ]
    lines = [
        f"Run `{m['label']}`: {m['started']}, commit `{m.get('commit', '')}`, {m['cpu']} ({m['cpus']} CPUs, "
        f"{m['memory_gib']} GiB), Python {m['python']}, vLLM {m['vllm']}; {m['model']} model, "
        f"{w['max_tokens']} tokens per request, {w['num_prompts']} requests per level; "
        f"`kernel.sched_autogroup_enabled={report._f(m.get('autogroup'))}`. Load average at "
        f"the start {' / '.join(f'{x:.1f}' for x in m['loadavg_at_start'])}; other CPU % during the levels "
        f"(100 = one core taken by processes outside the benchmark): {', '.join(load) or '–'}.",
        "",
        "| contender | "
        + " | ".join(f"c={c} tok/s (TTFT p50 ms)" for c in cs)
        + " | "
        + " | ".join(f"front-end CPU ms / 1k tok c={c}" for c in cs)
        + " | other CPU % |",
        "|---|" + "---:|" * (2 * len(cs)) + "---|",
    ]
    for contender, variant, label in report.SERIES:
        levels = [report.level(results, contender, variant, c) for c in cs]
        if not any(levels):
            continue
        tput = [
            f"{s['output_throughput']:.0f} ({report._f(s['ttft_ms']['p50'])})" if s else "–" for s in levels
        ]
        cpu = [report._f((s or {}).get("front_end", {}).get("cpu_ms_per_1k_tokens")) for s in levels]
        other = " / ".join(f"{s['load']['other_cpu_pct']:.0f}" for s in levels if s)
        lines.append(f"| {label} | " + " | ".join(tput + cpu) + f" | {other} |")
    lines += ["", "Targets:", ""]
    for t in results["targets"]:
        if t["met"] is None:
            continue
        mark = "met" if t["met"] else "**missed**"
        lines.append(f"- {t['target']}: {report._f(t['value'], 3)} — {mark}")
    lines += ["", "Round trips on the idle server, p50 / p99 (ms), and 8 concurrent calls against one:", ""]
    for name, res in results["contenders"].items():
        if "error" in res:
            lines.append(f"- {name}: **failed**: {res['error']}")
            continue
        rt = "; ".join(f"{k} {v['p50']:.2f} / {v['p99']:.2f}" for k, v in res.get("overhead_ms", {}).items())
        b = res.get("batching")
        extra = (
            f"; 8 calls {b['eight_s']:.2f} s against one {b['one_s']:.2f} s ({b['ratio']:.2f}x)" if b else ""
        )
        if rt or extra:
            lines.append(f"- {name}: {rt}{extra}")
    lines += ["", f"All figures: `bench/results/{m['label']}.md` and `.json`.", ""]
    return "\n".join(lines)


def fill(doc: str, results: dict[str, Any]) -> str:
    label = results["meta"]["label"]
    begin, end = f"<!-- bench:{label} begin -->", f"<!-- bench:{label} end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"no '{begin}' ... '{end}' section in the document")
    return pattern.sub(lambda _: f"{begin}\n{section(results)}{end}", doc)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m bench.docs RESULT.json DOC.md")
    results = json.loads(Path(argv[0]).read_text())
    doc = Path(argv[1])
    doc.write_text(fill(doc.read_text(), results))
    print(f"filled {doc} from {argv[0]}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
