# `make run` and `make test` do all the set-up on a fresh machine (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
SANDBOX_PORT ?= 8801
KUSTOMER_PORT ?= 8802
WEB_PORT ?= 8000

.PHONY: help install env services migrate demo run test lint format bench screenshots clean

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
	CRM_ALLOW_LOOPBACK=true $(PY) manage.py load_demo --sandbox-url http://127.0.0.1:$(SANDBOX_PORT) --kustomer-url http://127.0.0.1:$(KUSTOMER_PORT) --web-url http://127.0.0.1:$(WEB_PORT)

# DEBUG and loopback CRMs are on for the demo's processes only (.env.example keeps both off). honcho
# reads no .env (-e /dev/null): it would override these; each process reads .env itself.
run: demo
	DJANGO_DEBUG=true CRM_ALLOW_LOOPBACK=true LOG_FORMAT=plain SANDBOX_PORT=$(SANDBOX_PORT) KUSTOMER_PORT=$(KUSTOMER_PORT) WEB_PORT=$(WEB_PORT) \
		$(VENV)/bin/honcho -e /dev/null -f Procfile start

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

# The console's pictures in docs/ (the home health panel and Simulate), from its browser tests.
screenshots: services
	@$(PY) scripts/ensure_services.py --browser
	SCREENSHOT_DIR=docs $(PY) -m pytest tests/browser/test_console_admin.py -k "home_panel or simulate"

bench: migrate
	$(PY) bench/ingest.py
	$(PY) bench/status.py
	$(PY) bench/import.py
	$(PY) bench/search.py
	$(PY) bench/purge.py
	$(PY) bench/console.py
	$(PY) bench/request_overhead.py
	$(PY) bench/screen_pop.py
	$(PY) bench/chaos.py --broker redis
	$(PY) bench/chaos.py --broker rabbitmq
	$(PY) bench/crm_calls.py
	$(PY) bench/faults.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache staticfiles var
