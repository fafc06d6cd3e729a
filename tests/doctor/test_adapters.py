"""doctor's LoRA check: adapters found here or not, and compared with the base model's weights
(the tiny real model and adapters of the fixtures; one adapter made for a wider model)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.doctor import settings
from tests.support.models import make_tiny_adapter
from vllm_mcp.doctor import Probes, model
from vllm_mcp.doctor.adapters import check_adapters


def run(tmp_path: Path, base: Path, modules: str, offline: bool = False):  # type: ignore[no-untyped-def]
    s = settings(VLLM_MODEL_NAME=str(base), VLLM_MCP_LORA_MODULES=modules)
    probes = Probes(offline=lambda: offline, hub_cache=lambda: tmp_path / "hub")
    _, facts = model.check_model(s, probes)
    return check_adapters(s, facts, probes)


def test_no_adapters_no_check(tiny_model: Path) -> None:
    s = settings(VLLM_MODEL_NAME=str(tiny_model))
    assert check_adapters(s, None, Probes()) is None


def test_adapters_made_for_the_base_model_pass(
    tmp_path: Path, tiny_model: Path, tiny_adapters: dict[str, Path]
) -> None:
    modules = " ".join(f"{n}={p}" for n, p in tiny_adapters.items())
    check = run(tmp_path, tiny_model, modules)
    assert check is not None and check.status == "ok", check
    assert check.message == "alpha: fits the base model; beta: fits the base model"


def test_an_adapter_for_another_model_fails_naming_the_module(tmp_path: Path, tiny_model: Path) -> None:
    wider = tmp_path / "wider"
    wider.mkdir()
    config = json.loads((tiny_model / "config.json").read_text())
    (wider / "config.json").write_text(json.dumps({**config, "hidden_size": 256}))
    adapter = make_tiny_adapter(tmp_path / "wrong", wider, seed=3)
    check = run(tmp_path, tiny_model, f"wrong={adapter}")
    assert check is not None and check.status == "fail"
    assert "wrong: not made for" in check.message
    assert "model.layers.0.self_attn.q_proj takes 128 inputs, the adapter 256" in check.message
    not_lora = tmp_path / "empty"
    not_lora.mkdir()
    check = run(tmp_path, tiny_model, f"e={not_lora}")
    assert check is not None and check.status == "fail" and "has no adapter_config.json" in check.message


def test_an_adapter_not_fetched_warns_and_fails_offline(tmp_path: Path, tiny_model: Path) -> None:
    check = run(tmp_path, tiny_model, "sql=org/sql-lora")
    assert check is not None and check.status == "warn"
    assert check.message == "sql (org/sql-lora): not fetched yet" and "vllm-mcp prefetch" in (check.fix or "")
    check = run(tmp_path, tiny_model, "sql=org/sql-lora", offline=True)
    assert check is not None and check.status == "fail" and "HF_HUB_OFFLINE" in check.message
    check = run(tmp_path, tiny_model, f"gone={tmp_path / 'nowhere'}")
    assert check is not None and check.status == "fail" and check.message.endswith("nowhere does not exist")
