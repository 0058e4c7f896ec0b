# The two commands a newcomer needs: `make demo` and `make test` (README "Setup").
# `make env` is idempotent: it reinstalls only when pyproject.toml changes, and pip's cache makes
# a reinstall of the pinned PyTorch wheel fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# The pinned torch (a multi-GB CUDA wheel from PyPI that also runs on the CPU) is kept in a local
# wheelhouse: this machine's pip does not keep an HTTP cache, and a fresh clone must not download
# it again. `pip download` into the wheelhouse is a no-op for files already there.
TORCH      := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
WHEELHOUSE ?= $(HOME)/.cache/ringwatch/wheels

.PHONY: env demo test bench bench-scale bench-train bench-api clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip download --quiet --dest $(WHEELHOUSE) '$(TORCH)'
	$(PY) -m pip install --quiet --no-index --find-links $(WHEELHOUSE) '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: env
	$(VENV)/bin/ringwatch demo

# The Neo4j tests need the local server's jars (Maven Central, cached in ~/.m2) and the Browser test
# needs Debian's Chromium. In CI a failed install fails the run; elsewhere those tests skip loudly.
test: env
	bash scripts/neo4j.sh install || test -z "$$CI"
	bash scripts/install-chromium.sh || test -z "$$CI"
	$(PY) -m pytest -ra

bench: env
	$(PY) bench/ingest_bench.py
	$(PY) bench/store_bench.py

# GraphSAGE training (full batch, mini-batch with neighbour sampling, and mini-batch on 1 and 2
# data-parallel ranks) and scoring at 100k, 1M and 5M synthetic transactions: epoch time, peak
# RSS per rank, end-to-end time, scoring throughput, held-out AUPRC with its interval and frauds.
# Batch 65,536 (the batch at which a mini-batch epoch keeps within 3x of full batch), at most 10
# mini-batch epochs. Not in `make bench`: the 1M size alone took about 6 minutes on two busy
# cores, and 5M was not run end to end with these settings (README, "Training past one process").
bench-scale: env
	$(PY) bench/scale_bench.py --nproc 1,2 --batch-size 65536 --mini-epochs 10

# `ringwatch train` on the demo and on a hub-shaped graph (three merchants carry every payment,
# 70 % of users labelled), 3 runs each: seconds, ms per event, where the time went, review queue.
# `$(PY) bench/train_bench.py --hog 2` does the same beside two busy-looping processes. About 3 min.
bench-train: env
	$(PY) bench/train_bench.py

# The HTTP API under load on loopback: `ringwatch serve` with 2 workers on a fresh demo home,
# an aiohttp load generator in its own process; req/s and p50/p95/p99 for /ping, account risk and
# unseen checkout events, at 500 req/s and at the most the server gives; worker RSS. About 3 min.
bench-api: env
	$(PY) bench/api_bench.py

clean:
	rm -rf ringwatch-data .pytest_cache
