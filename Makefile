# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE := sample_media/car-detection.mp4
# setuptools warns on every editable install that a folder named like the package, in the
# folder you run from, is imported first: here that folder is the package itself, on purpose.
QUIET := PYTHONWARNINGS=ignore

.PHONY: demo test lint types unit clean case-study

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(QUIET) $(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(QUIET) $(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/vidpipe run $(SAMPLE) --out demo_out
	@echo "next: . $(VENV)/bin/activate && vidpipe compare $(SAMPLE)   (every layout side by side)"

lint: $(VENV)/.dev
	$(PY) -m ruff check pipeline tests scripts examples exercises
	$(PY) -m ruff format --check pipeline tests scripts examples exercises

types: $(VENV)/.dev
	$(PY) -m mypy pipeline

unit: $(VENV)/.dev
	$(PY) -m pytest

test: lint types unit

# Measure everything behind docs/case-study.md, docs/cluster.md's table and the README's
# measured tables (about 20 minutes on 2 cores), then render them from docs/data/case-study/.
case-study: $(VENV)/.dev
	$(PY) scripts/case_study.py measure

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
