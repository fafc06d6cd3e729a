"""doctor's report and the whole run: text and JSON, a recorded GPU machine, and the real command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.doctor import a800_runner, invoke, local_model, run_cli
from vllm_mcp import doctor
from vllm_mcp.doctor import Check, Probes, Report, TorchProbe

# --- the report and the command -------------------------------------------------------------


def test_report_text_marks_failures_and_gives_the_fix() -> None:
    report = Report([Check("a", "ok", "fine"), Check("b", "fail", "broken", "do this")])
    text = report.to_text().splitlines()
    assert text[1].startswith("FAIL  b") and text[2].strip() == "fix: do this"
    assert text[-1] == "doctor: 1 ok, 0 warnings, 1 failed"
    assert report.failed and json.loads(report.to_json())["summary"]["fail"] == 1


def test_whole_run_on_a_recorded_gpu_machine(tmp_path: Path) -> None:
    model = local_model(tmp_path / "m")
    probes = Probes(
        environ={"VLLM_MODEL_NAME": str(model), "VLLM_TENSOR_PARALLEL_SIZE": "2"},
        run=a800_runner(),
        offline=lambda: True,
        torch=lambda: TorchProbe("2.9.0", "12.8", True, 8),
        version=lambda d: "0.32.0" if d in ("vllm", "torch", "mcp") else None,
    )
    report = doctor.run_checks(probes)
    by_name = {c.name: c for c in report.checks}
    assert by_name["gpu"].status == "ok" and by_name["torch"].status == "ok"
    assert by_name["gpu-memory"].status == "fail"  # GPUs 0 and 1 are busy
    assert by_name["parallel"].status == "ok" and "cpu" not in by_name
    assert report.failed


@pytest.mark.engine
def test_doctor_json_subprocess_on_this_machine(tmp_path: Path) -> None:
    proc = run_cli("doctor", "--json", env={"HF_HUB_OFFLINE": "1", "VLLM_MCP_CACHE_DIR": str(tmp_path)})
    report = json.loads(proc.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert proc.returncode == (1 if "fail" in statuses.values() else 0), proc.stdout
    assert report["ok"] == (proc.returncode == 0)
    if shutil.which("nvidia-smi") is None:
        # No GPU here: the CPU fallback is reported, and the missing GPU alone is not a failure.
        assert statuses["gpu"] == "warn"
        assert "cpu" in statuses
        assert proc.returncode == 0, proc.stdout


def test_doctor_fails_on_bad_config_and_usage_errors_exit_2() -> None:
    result = invoke("doctor", env={"HF_HUB_OFFLINE": "1", "VLLM_DTYPE": "half"})
    assert result.exit_code == 1
    assert any(
        line.startswith("FAIL  config") and "VLLM_DTYPE" in line for line in result.stdout.splitlines()
    )
    assert invoke("doctor", "--bogus").exit_code == 2


def test_settings_that_only_limit_calls_warn_and_do_not_fail(tmp_path: Path) -> None:
    # VLLM_MAX_MODEL_LEN=512 leaves the default reply (512) no room: calls get capped replies,
    # which serves; a failure here would stop a gateway whose unit runs doctor first (issue 12).
    env = {"VLLM_MAX_MODEL_LEN": "512", "VLLM_MCP_CACHE_DIR": str(tmp_path)}
    result = invoke("doctor", "--json", env=env)
    config = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["config"]
    assert config["status"] == "warn" and "VLLM_DEFAULT_MAX_TOKENS (512)" in config["message"]
    assert result.exit_code == (1 if '"status": "fail"' in result.stdout else 0)
