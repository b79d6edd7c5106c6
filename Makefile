# `make run` serves the API on 127.0.0.1:$(PORT) for development; `make serve` runs the production
# server there (`manage.py serve`: two workers per core unless WEB_CONCURRENCY says otherwise);
# `make test` runs the suite; `make bench` runs the benchmark suite (bench/, about 15 minutes;
# `make bench BENCH_QUICK=1` for a short run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run serve test lint migrate clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

run: migrate
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py seed_demo --first-run
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

serve: migrate
	$(BIN)/python manage.py serve --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	BENCH_QUICK=$(BENCH_QUICK) BENCH_THREADS=$(BENCH_THREADS) bash bench/run.sh

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .venv-bench *.egg-info test-*.sqlite3*
