# attnrec: `make demo` and `make test` work on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# A CPU build of torch==2.13.0 may lie in /opt/wheels on our machines; pip finds it there first.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install demo test lint typecheck bench-eval bench-classic bench-sasrec bench-docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(FIND_LINKS) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/attnrec demo

# The event-store tests need a PostgreSQL server: .ci/setup-postgres.sh installs Debian's package and starts
# one on 127.0.0.1 (log in .venv/postgres-setup.log). Without it they skip locally and fail under CI=true.
# The browser tests (tests/browser) need Debian's chromium: .ci/setup-browser.sh installs it the same way.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	@dsn="$${ATTNREC_TEST_POSTGRES_DSN:-$$(bash .ci/setup-postgres.sh 2>$(VENV)/postgres-setup.log)}"; \
	if [ -z "$$dsn" ]; then echo "PostgreSQL unavailable (see $(VENV)/postgres-setup.log)"; fi; \
	echo "ATTNREC_TEST_POSTGRES_DSN=$$dsn"; \
	chromium="$${ATTNREC_CHROMIUM:-$$(bash .ci/setup-browser.sh 2>$(VENV)/browser-setup.log)}"; \
	if [ -z "$$chromium" ]; then echo "Chromium unavailable (see $(VENV)/browser-setup.log)"; fi; \
	echo "ATTNREC_CHROMIUM=$$chromium"; \
	ATTNREC_TEST_POSTGRES_DSN="$$dsn" ATTNREC_CHROMIUM="$$chromium" $(VENV)/bin/pytest

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

# every generated table of docs/benchmarks.md, one config per table (finished cells are reused)
# (sequential.toml runs after fusion.toml and starts from its finished cells: same SASRec and EASE configurations)
# cells computed side by side (each with the config's threads divided among them): `make bench-docs BENCH_JOBS=8`
BENCH_JOBS ?= 2

bench-docs: $(STAMP)
	for config in benchmarks/configs/*.toml; do \
		name=$$(basename $$config .toml); \
		if [ $$name = sequential ] && [ -d runs/bench/fusion/cells ]; then \
			mkdir -p runs/bench/sequential/cells && cp -rn runs/bench/fusion/cells/. runs/bench/sequential/cells/; \
		fi; \
		$(VENV)/bin/attnrec benchmark --config $$config --out runs/bench/$$name --jobs $(BENCH_JOBS) \
			--record benchmarks/results/$$name --update-docs docs/benchmarks.md || exit 1; \
	done
	$(PY) benchmarks/cold_start.py --datasets ml-100k ml-1m --seeds 0,1,2 \
		--models content popularity din autoint --cache benchmarks/results/cold-start \
		--update-docs docs/benchmarks.md --section cold-start

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
