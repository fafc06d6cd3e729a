"""Unit tests of the engine wrapper's set-up (no engine is started here)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import core as engine
from vllm_mcp.engine import environment

# build_engine_args imports vLLM (5-8 s of CPU): those tests run with the engine suite.
imports_vllm = pytest.mark.engine


@imports_vllm
def test_unknown_engine_argument_suggests_the_nearest() -> None:
    settings = Settings.load(environ={"VLLM_MCP_ENGINE_ARGS": '{"enforce_eagr": true}'})
    with pytest.raises(engine.EngineUnavailable) as e:
        engine.build_engine_args(settings, "/models/x")
    assert "unknown engine argument 'enforce_eagr'; did you mean 'enforce_eager'?" in str(e.value)


@imports_vllm
def test_engine_args_follow_the_settings_and_pass_extras_through() -> None:
    settings = Settings.load(
        environ={
            "VLLM_DTYPE": "bfloat16",
            "VLLM_MAX_MODEL_LEN": "2048",
            "VLLM_GPU_MEMORY_UTILIZATION": "0.8",
            "VLLM_MCP_ENGINE_ARGS": '{"enforce_eager": true, "max_num_seqs": 8}',
        }
    )
    args = engine.build_engine_args(settings, "/models/x")
    assert (args.model, args.dtype, args.max_model_len, args.gpu_memory_utilization) == (
        "/models/x",
        "bfloat16",
        2048,
        0.8,
    )
    assert args.enforce_eager is True and args.max_num_seqs == 8


@imports_vllm
def test_lora_modules_turn_lora_on_and_engine_args_still_win(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    env = {"VLLM_MCP_LORA_MODULES": f"a={tmp_path} b={tmp_path}"}
    args = engine.build_engine_args(Settings.load(environ=env), "/models/x")
    assert (args.enable_lora, args.max_loras, args.max_lora_rank) == (True, 2, 8)
    env["VLLM_MCP_ENGINE_ARGS"] = '{"max_loras": 1}'
    assert engine.build_engine_args(Settings.load(environ=env), "/models/x").max_loras == 1
    assert engine.build_engine_args(Settings.load(environ={}), "/models/x").enable_lora is False


@imports_vllm
def test_structured_outputs_config_from_json_becomes_vllms_config() -> None:
    extra = '{"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": true}}'
    args = engine.build_engine_args(Settings.load(environ={"VLLM_MCP_ENGINE_ARGS": extra}), "/m")
    config = args.structured_outputs_config
    assert (config.backend, config.disable_any_whitespace) == ("xgrammar", True)


def test_process_environment_sends_vllm_logs_to_stderr_and_hides_our_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A private copy: the function edits os.environ, and that must not leak into other tests.
    environ = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    environ.update({"VLLM_MAX_SESSIONS": "5", "HUGGING_FACE_HUB_TOKEN": "hf_fake"})
    monkeypatch.setattr(os, "environ", environ)
    settings = Settings.load(environ=dict(os.environ))
    environment.prepare_process_environment(settings)
    assert os.environ["VLLM_LOGGING_STREAM"] == "ext://sys.stderr"
    # INFO, for the load phases in its lines; the log pump shows them only at DEBUG.
    assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO"
    assert "VLLM_MAX_SESSIONS" not in os.environ  # vLLM would warn about a name it does not know
    assert "HUGGING_FACE_HUB_TOKEN" not in os.environ and os.environ["HF_TOKEN"] == "hf_fake"
    # vLLM's own variables are left alone.
    assert "VLLM_CPU_KVCACHE_SPACE" in environment.engine_env_names()


def test_a_gateways_token_never_reaches_the_engine_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """FluidMCP passes its whole environment, its bearer token included, to the server."""
    environ = dict(os.environ)
    environ.update({"FMCP_BEARER_TOKEN": "gw-secret", "FMCP_SECURE_MODE": "true", "KEEP_ME": "1"})
    monkeypatch.setattr(os, "environ", environ)
    environment.prepare_process_environment(Settings.load(environ={}))
    assert not [k for k in os.environ if k.startswith("FMCP_")]
    assert "gw-secret" not in os.environ.values()
    assert os.environ["KEEP_ME"] == "1"


def test_engine_env_names_do_not_import_vllm() -> None:
    """``serve`` reads them before its first request; importing vLLM takes seconds."""
    import subprocess
    import sys

    code = (
        "import sys; from vllm_mcp.engine.environment import engine_env_names; names = engine_env_names(); "
        "assert 'VLLM_CPU_KVCACHE_SPACE' in names; assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("preset", [None, "1"])
def test_vllm_cpu_uses_the_compile_cache_it_can_read_back(
    monkeypatch: pytest.MonkeyPatch, preset: str | None
) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "VLLM_USE_AOT_COMPILE"}
    if preset is not None:
        environ["VLLM_USE_AOT_COMPILE"] = preset
    monkeypatch.setattr(os, "environ", environ)
    environment.prepare_process_environment(Settings.load(environ=dict(os.environ)))
    # An operator's own choice wins; vLLM's default stays where it works (the GPU build).
    expected = preset or ("0" if environment._is_vllm_cpu() else None)
    assert os.environ.get("VLLM_USE_AOT_COMPILE") == expected


# A child that names itself as vLLM names its CPU worker, starts a second thread, and
# spawns a grandchild worker of its own; it prints when all of that is in place.
_FAKE_WORKER = """
import os, subprocess, sys, threading, time
open("/proc/self/comm", "w").write(sys.argv[1])
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
if len(sys.argv) > 2:
    grandchild = subprocess.Popen([sys.executable, "-c", sys.argv[2], "VLLM::Worker_TP1"],
                                  stdout=subprocess.PIPE)
    grandchild.stdout.readline()
    print(grandchild.pid)
print("ready", flush=True)
time.sleep(60)
"""


def _threads_nice(pid: int) -> set[int]:
    return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_cpu_workers_and_only_they_get_a_lower_priority() -> None:
    import subprocess
    import sys

    worker = subprocess.Popen(
        [sys.executable, "-c", _FAKE_WORKER, "VLLM::Worker", _FAKE_WORKER], stdout=subprocess.PIPE, text=True
    )
    other = subprocess.Popen([sys.executable, "-c", _FAKE_WORKER, "VLLM::EngineCor"], stdout=subprocess.PIPE)
    assert worker.stdout is not None and other.stdout is not None
    grandchild = int(worker.stdout.readline())
    try:
        assert worker.stdout.readline().strip() == "ready" and other.stdout.readline().strip() == b"ready"
        assert engine.lower_worker_priority(os.getpid(), 7) == sorted([worker.pid, grandchild])
        assert _threads_nice(worker.pid) == {7} and _threads_nice(grandchild) == {7}
        assert len(os.listdir(f"/proc/{worker.pid}/task")) >= 2  # every thread, not only the main one
        assert _threads_nice(other.pid) == {0} and _threads_nice(os.getpid()) == {0}
    finally:
        os.kill(grandchild, signal.SIGKILL)
        for p in (worker, other):
            p.kill()
            p.wait()


@imports_vllm
def test_a_worker_nodes_settings_become_vllms_own_multi_node_parallel_config(tiny_model: Path) -> None:
    from vllm.usage.usage_lib import UsageContext

    env = {
        "VLLM_NNODES": "2",
        "VLLM_NODE_RANK": "1",
        "VLLM_MASTER_ADDR": "10.0.0.1",
        "VLLM_MASTER_PORT": "29600",
        "VLLM_PIPELINE_PARALLEL_SIZE": "2",
        "VLLM_DTYPE": "float32",
        "VLLM_MAX_MODEL_LEN": "256",
    }
    args = engine.build_engine_args(Settings.load(environ=env), str(tiny_model))
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER, headless=True)
    p = config.parallel_config
    assert (p.nnodes, p.node_rank, p.master_addr, p.master_port) == (2, 1, "10.0.0.1", 29600)
    assert (p.distributed_executor_backend, p.world_size, p.local_world_size) == ("mp", 2, 1)
    assert p.node_rank_within_dp == 1  # vllm serve --headless runs only workers on such a node


class DeadAsyncLLM:
    """TEST DOUBLE of vLLM's ``AsyncLLM`` once its engine core process died: only ``errored`` is read."""

    errored = True


def test_an_engine_core_death_says_failed_and_is_reported_once_seen() -> None:
    e = engine.Engine(Settings.load(environ={}))
    assert not e.died()  # nothing loaded yet
    e._llm, e.state = DeadAsyncLLM(), engine.EngineState.READY
    assert e.died()
    assert (e.state, e.failure) == (engine.EngineState.FAILED, "the vLLM engine process died")


def test_an_engine_core_death_a_call_found_first_still_ends_the_server() -> None:
    """A call that meets the dead core first marks it failed; the server's watcher must still see it."""
    e = engine.Engine(Settings.load(environ={}))
    e._llm, e.state = DeadAsyncLLM(), engine.EngineState.READY
    with pytest.raises(engine.EngineUnavailable, match="the server is restarting"):
        e.check_serving()
    assert e.died() and e.state is engine.EngineState.FAILED
