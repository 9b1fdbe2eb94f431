# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates or reuses the virtual environment $(VENV) and installs what it needs.
VENV ?= .venv
PYTHON ?= python3
# CPU machines take the CPU build of torch (on local disk here); with an NVIDIA driver, pip's
# default CUDA build. Override, e.g.: make demo TORCH_SPEC="torch --index-url <your index>"
TORCH_SPEC ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
# Optional prebuilt torch-sparse/torch-scatter wheels (CPU, cp311, torch 2.13.0): used as
# test references when present, never required.
WHEELS ?= $(wildcard ../shared/wheels/*.whl)
STAMP := $(VENV)/.installed
# The lent GPU image runs Triton 3.6: every kernel must also compile there.
TRITON36 := $(VENV)/triton-3.6

.PHONY: demo test clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	$(if $(WHEELS),-$(VENV)/bin/python -m pip install -q --no-deps $(WHEELS))
	touch $@

demo: $(STAMP)
	$(VENV)/bin/gnnrec demo

test: $(STAMP) $(TRITON36)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	cd tests && env -u TRITON_INTERPRET PYTHONPATH=../$(TRITON36) ../$(VENV)/bin/python compile_kernels.py
	$(VENV)/bin/pytest

$(TRITON36): $(STAMP)
	rm -rf $@
	$(VENV)/bin/python -m pip install -q --no-deps --target $@ triton==3.6.0

clean:
	rm -rf $(VENV) runs build *.egg-info
