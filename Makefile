# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs
# the project when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DATA ?= demo-data

.PHONY: venv demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fashionrec demo --data $(DEMO_DATA)

test: $(STAMP)
	$(PY) -m pytest

# `make bench`: naive vs ours side by side (benchmarks/run.py); faiss-cpu comes with the bench extra.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	PYTHONPATH=. $(PY) benchmarks/run.py

clean:
	rm -rf $(DEMO_DATA) .pytest_cache
