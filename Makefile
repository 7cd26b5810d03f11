# attnrec: `make demo` and `make test` work on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# A CPU build of torch==2.13.0 may lie in /opt/wheels on our machines; pip finds it there first.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install demo test lint typecheck bench-eval bench-classic bench-sasrec clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(FIND_LINKS) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/attnrec demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench-eval: $(STAMP)
	$(PY) benchmarks/eval_speed.py

bench-classic: $(STAMP)
	$(PY) benchmarks/classic.py

bench-sasrec: $(STAMP)
	$(PY) benchmarks/sasrec.py --data ml-1m --seeds 0,1,2

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
