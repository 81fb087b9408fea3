# `make run` — set up and run the whole service on embedded defaults (SQLite, filesystem broker).
# `make test` — set up and run the test suite.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test install browser check-deploy bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	PORT=$(PORT) PYTHON=$(PY) ./scripts/run-demo.sh

# The admin tests drive Debian's chromium through Playwright; install it when we can (root + apt).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

check-deploy: install
	DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  ALLOWED_HOSTS=governance.example.org DATABASE_URL=postgres://localhost/unused \
	  $(PY) manage.py check --deploy --fail-level WARNING

bench: install
	$(PY) bench/ingest.py
	$(PY) bench/training.py
	$(PY) bench/shap.py

clean:
	rm -rf var
