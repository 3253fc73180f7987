# Portail famille — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
FLASK   = $(VENV)/bin/flask --app app
PORT   ?= 5000
export FLASK_APP = app.py

.PHONY: run test lint install install-dev translations db demo worker bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: install

translations: install
	$(PY) -m babel.messages.frontend compile -d translations --statistics

db: install
	$(FLASK) db upgrade

## make run: install, create the database, load the demo data when empty, serve on 127.0.0.1:$(PORT)
run: install translations db
	@if $(FLASK) db-is-empty; then $(FLASK) demo-data; else $(FLASK) tenants sync; fi
	@echo "Portail famille : http://127.0.0.1:$(PORT)/  (comptes de démonstration dans le README)"
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## make test: install everything and run the whole suite
test: install translations
	$(PY) -m playwright --version >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

## make bench: the portal against a bare-Flask baseline, then the opening morning (PostgreSQL, Redis, wrk; ~8 min)
bench: install translations
	$(PY) bench/run.py

lint: install
	$(VENV)/bin/ruff check .

worker: install
	$(FLASK) worker

clean:
	rm -rf instance/outbox instance/*.sqlite3 .pytest_cache
