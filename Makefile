# `make run` and `make test` do all the set-up on a fresh machine (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
SANDBOX_PORT ?= 8801
WEB_PORT ?= 8000

.PHONY: help install env services migrate demo run test lint format bench clean

help:
	@echo "make run    - set up and start the product with a demo configuration and a sandbox Zendesk"
	@echo "make test   - set up and run lint, types and the whole test suite"
	@echo "make bench  - run the benchmarks in bench/"

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

env: install
	@$(PY) scripts/make_env.py

services: env
	@$(PY) scripts/ensure_services.py

migrate: services
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo --sandbox-url http://127.0.0.1:$(SANDBOX_PORT) --web-url http://127.0.0.1:$(WEB_PORT)

run: demo
	SANDBOX_PORT=$(SANDBOX_PORT) WEB_PORT=$(WEB_PORT) $(VENV)/bin/honcho -f Procfile start

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: services lint
	@$(PY) scripts/ensure_services.py --browser
	$(PY) -m pytest

bench: migrate
	$(PY) bench/ingest.py
	$(PY) bench/status.py
	$(PY) bench/import.py
	$(PY) bench/search.py
	$(PY) bench/purge.py
	$(PY) bench/screen_pop.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache staticfiles var
