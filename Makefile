# One-command entry points. `make demo` and `make test` build .venv/ first when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A torch already importable by $(PYTHON) (e.g. your CUDA build) is kept: the venv then sees system site-packages.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-stamp

.PHONY: setup demo test clean-venv

setup: $(STAMP)

$(STAMP): setup.py requirements-test.txt Makefile
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then \
	    echo "Using the torch of $(PYTHON) (kept, not reinstalled)"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	# RecBole 1.2.1 pins ray<=2.6.3 (no py3.12 wheels, breaks on numpy 2): install it without deps,
	# then the plugin, which declares RecBole's real runtime dependencies.
	$(PIP) install --no-deps "recbole==1.2.1"
	$(PIP) install -e . -r requirements-test.txt
	@touch $(STAMP)

demo: setup
	$(PY) run_recbole_darec.py --model=DaRecLightGCN --dataset=ml-100k --config_files="configs/ml100k_study.yaml configs/demo.yaml"

test: setup
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
