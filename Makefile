# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs
# the project when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DATA ?= demo-data

.PHONY: venv demo test bench bench-scale clean serve

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fashionrec demo --data $(DEMO_DATA)

# Prefect server + UI on http://127.0.0.1:4200, work pool, deployments, worker (and the MLflow
# UI on :5000), in the foreground; Ctrl-C stops them all. See "Operations" in the README.
serve: $(STAMP)
	FASHIONREC_BIN=$(abspath $(VENV))/bin deployments/serve.sh

test: $(STAMP)
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium (not root?): the gallery browser test will skip"
	$(PY) -m pytest

# `make bench`: naive vs ours side by side (benchmarks/run.py); faiss-cpu comes with the bench extra.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	PYTHONPATH=. $(PY) benchmarks/run.py
	PYTHONPATH=. $(PY) benchmarks/compat_topk_50k.py --mlp-queries 256

# `make bench-scale [ITEMS=50000]`: a full refresh and the refresh after a 1% change on a synthetic
# catalogue (vectors written straight into the embedding store), to benchmarks/results/scale.json
# (another size: scale_<ITEMS/1000>k.json, so that it does not overwrite the 250,000-item figures)
ITEMS ?= 250000
SCALE_OUT ?= benchmarks/results/scale$(if $(filter 250000,$(ITEMS)),,_$(shell echo $$(($(ITEMS) / 1000)))k).json
bench-scale: $(STAMP)
	PYTHONPATH=. $(PY) benchmarks/bench_scale.py --items $(ITEMS) --out $(SCALE_OUT)

clean:
	rm -rf $(DEMO_DATA) .pytest_cache
