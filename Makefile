# The two commands a newcomer needs: `make demo` and `make test` (README "Setup").
# `make env` is idempotent: it reinstalls only when pyproject.toml changes, and pip's cache makes
# a reinstall of the pinned PyTorch wheel fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: env demo test bench clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: env
	$(VENV)/bin/ringwatch demo

test: env
	$(PY) -m pytest -ra

bench: env
	$(PY) bench/ingest_bench.py

clean:
	rm -rf ringwatch-data .pytest_cache
