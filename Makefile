# Portail famille — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
FLASK   = $(VENV)/bin/flask --app app
PORT   ?= 5000
export FLASK_APP = app.py

LOCK     = requirements.txt
LOCK_DEV = requirements-dev.txt

.PHONY: run test lint install install-dev lock translations db worker bench clean

## The versions installed are the lock files' (hashes checked); the ranges stay in pyproject.toml.
$(VENV)/.installed: $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed $(LOCK_DEV)
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r $(LOCK_DEV)
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## make lock: the lock files follow pyproject.toml (new or removed dependencies; pins kept otherwise);
## make lock LOCK_UPGRADE=--upgrade takes the newest versions the ranges allow
LOCK_UPGRADE ?=
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet "pip-tools==7.*")
	.venv-lock/bin/pip-compile --quiet $(LOCK_UPGRADE) --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	    --no-emit-find-links --extra dev -o $(LOCK_DEV) pyproject.toml
	.venv-lock/bin/pip-compile --quiet $(LOCK_UPGRADE) --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	    --no-emit-find-links -c $(LOCK_DEV) -o $(LOCK) pyproject.toml

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
test: install-dev translations
	$(PY) -m playwright --version >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

## make bench: the portal against a bare-Flask baseline, then the opening morning (PostgreSQL, Redis, wrk; ~8 min)
bench: install-dev translations
	$(PY) bench/run.py

lint: install-dev
	$(VENV)/bin/ruff check .

worker: install
	$(FLASK) worker

clean:
	rm -rf instance/outbox instance/*.sqlite3 .pytest_cache .venv-lock
