# memportal: `make demo` runs the whole portal with a memories.ai emulator; `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONUNBUFFERED := 1
# Candidates are run, not just looked up: pyenv shims exist for versions that are not selected.
PYTHON_CANDIDATES := python3.12 python3.13 python3.14 python3 /usr/bin/python3.13 /usr/bin/python3

# Local runs are plain http on loopback: production settings without the TLS-only parts.
# Production settings need MEMPORTAL_PUBLIC_URL set: yours if you exported it, else empty (no callbacks).
LOCAL_ENV := DJANGO_DEBUG=false DJANGO_SECURE_SSL_REDIRECT=false DJANGO_SECURE_COOKIES=false \
	DJANGO_SECURE_HSTS_SECONDS=0 DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost \
	MEMPORTAL_PUBLIC_URL="$${MEMPORTAL_PUBLIC_URL-}"
DEMO_PORT ?= 8000
MEMORIES_EMULATOR_PORT ?= 9100
MEMPORTAL_PUBLIC_URL ?= http://127.0.0.1:$(DEMO_PORT)
DEMO_ENV := $(LOCAL_ENV) MEMPORTAL_BIND=127.0.0.1:$(DEMO_PORT) MEMPORTAL_PUBLIC_URL=$(MEMPORTAL_PUBLIC_URL) \
	MEMORIES_API_BASE_URL=http://127.0.0.1:$(MEMORIES_EMULATOR_PORT) MEMORIES_EMULATOR_PORT=$(MEMORIES_EMULATOR_PORT) \
	MEMPORTAL_UPLOAD_INTERVAL_SECONDS=10 MEMPORTAL_STATUS_FIRST_CHECK_SECONDS=5 \
	MEMPORTAL_RETRY_BASE_SECONDS=10 MEMPORTAL_EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend \
	MEMPORTAL_LOG_FORMAT=plain MEMPORTAL_UNDERSTANDING=true MEMORIES_API_FAMILY=v1
LOAD_SECRETS := set -a && . var/secrets.env && set +a

.PHONY: help demo run test fuzz install migrate clean
help:
	@echo "make demo   install, migrate, seed a demo team, start the portal with a memories.ai emulator"
	@echo "make run    the portal's processes (web, workers, clock) without demo data or emulator"
	@echo "make test   install and run the whole test suite"
	@echo "make fuzz   the randomized invariant test with a larger budget and a random seed (SEED=n to replay)"

$(VENV)/.python-ok:
	@for candidate in $(PYTHON_CANDIDATES); do \
	  if "$$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then \
	    echo "Using $$candidate ($$("$$candidate" --version))"; \
	    "$$candidate" -m venv $(VENV) || exit 1; touch $@; exit 0; \
	  fi; \
	done; \
	echo "memportal needs Python >= 3.12; none of these is: $(PYTHON_CANDIDATES)." >&2; \
	echo "Install one (e.g. 'pyenv install 3.12', or Debian 13's python3) and try again." >&2; exit 1

$(VENV)/.installed: $(VENV)/.python-ok requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Development and test tools (the memories.ai emulator's parser): never part of a production install.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-dev requirements-test.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

# Generated once and kept, so a restart can still decrypt the stored API keys.
var/secrets.env: | $(VENV)/.installed
	@mkdir -p var
	@umask 077 && $(PY) -c 'import secrets; from cryptography.fernet import Fernet; \
	print("DJANGO_SECRET_KEY=" + secrets.token_urlsafe(50)); \
	print("MEMPORTAL_FERNET_KEYS=" + Fernet.generate_key().decode()); \
	print("MEMPORTAL_DEMO_API_KEY=sk-mavi-demo-" + secrets.token_hex(16))' > $@
	@echo "Generated var/secrets.env (Django secret key, encryption key, demo API key)."

# After honcho: Ctrl-C (130) or a SIGTERM (143) is a stop, said in words; any other exit is make's error.
stopped = { rc=$$?; [ $$rc -eq 130 ] || [ $$rc -eq 143 ] || exit $$rc; echo "$(1) stopped."; }

migrate: $(VENV)/.installed var/secrets.env
	@$(LOAD_SECRETS) && env $(LOCAL_ENV) $(PY) manage.py migrate --no-input -v0
	@$(LOAD_SECRETS) && env $(LOCAL_ENV) $(PY) manage.py collectstatic --no-input -v0

demo: migrate $(VENV)/.installed-dev
	@$(LOAD_SECRETS) && env $(DEMO_ENV) $(PY) manage.py seed_demo
	@$(LOAD_SECRETS) && env $(DEMO_ENV) $(PY) manage.py reconcile --stale-after 0 -v2
	@echo
	@echo "memportal demo: http://127.0.0.1:$(DEMO_PORT)  (admin: http://127.0.0.1:$(DEMO_PORT)/admin/)"
	@echo "memories.ai emulator: http://127.0.0.1:$(MEMORIES_EMULATOR_PORT); callbacks to $(or $(MEMPORTAL_PUBLIC_URL),nowhere: status checks only)"
	@echo "Try it with the sample videos in tests/data/. Ctrl-C stops everything."
	@echo
	@$(LOAD_SECRETS) && export MEMORIES_EMULATOR_KEYS="$$MEMPORTAL_DEMO_API_KEY" && \
	  env $(DEMO_ENV) honcho -f Procfile.demo start || $(call stopped,memportal demo)

run: migrate
	@echo "make run: gunicorn straight on its port, for a developer's machine or a trusted network;"
	@echo "on the open network put it behind the TLS proxy of docs/deploy.md (slow clients, the Server banner)."
	@$(LOAD_SECRETS) && env $(LOCAL_ENV) $(PY) manage.py reconcile --stale-after 0
	@$(LOAD_SECRETS) && env $(LOCAL_ENV) honcho -f Procfile start || $(call stopped,memportal)

test: $(VENV)/.installed-test var/secrets.env
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

# The invariant test (tests/test_invariants.py) with the fuzz profile: prints its seed, and the
# failing steps and a reproduce blob when it finds something. SEED=n replays a run.
fuzz: $(VENV)/.installed-test var/secrets.env
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "hypothesis seed: $$seed"; \
	MEMPORTAL_HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_invariants.py -s -p no:cacheprovider \
	  --hypothesis-seed=$$seed --hypothesis-show-statistics

clean:
	rm -rf $(VENV) var/static var/test-*
