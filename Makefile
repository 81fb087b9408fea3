# `make run` — set up and run the whole service on embedded defaults (SQLite, filesystem broker).
# `make test` — set up and run the test suite.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test install migrate demo check-deploy bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	PORT=$(PORT) PYTHON=$(PY) ./scripts/run-demo.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

check-deploy: install
	DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  ALLOWED_HOSTS=governance.example.org DATABASE_URL=postgres://localhost/unused \
	  $(PY) manage.py check --deploy --fail-level WARNING

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf var
