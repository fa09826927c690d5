# patron-idp: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo lint test docs mutate bench-register bench-oidc bench-api translations clean

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed ($(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo]'
	@touch $(STAMP)

install: $(STAMP)

## Development keys, an SQLite database with demo data, and the IdP on http://127.0.0.1:5000
demo: $(STAMP)
	IDP_MODE=development $(VENV)/bin/idp demo

## The layering (README, Architecture) as import-linter contracts, then ruff and mypy: all configured in
## pyproject.toml ([tool.importlinter], [tool.ruff], [tool.mypy]). Any finding fails the target.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## The whole suite: on the embedded default, and on PostgreSQL + Redis where the backend matters (docs/testing.md)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## The settings reference in docs/configuration.md, written from idp/settings.py (a test checks it is current)
docs: $(STAMP)
	$(PY) -m idp.devtools.settings_doc

## The mutation run over the register, logins, claims and limits (docs/mutation-run.md). mutmut copies
## the project into ./mutants; its settings (modules, tests) are [tool.mutmut] in pyproject.toml.
## PYTHONPATH makes the CLI tests' subprocesses import the mutated copy too. Niced, two workers;
## MUTANTS='idp.web.limits*' runs only the mutants whose names match. Then: mutmut results / show.
MUTANTS ?=
mutate: $(STAMP)
	PYTHONPATH=$(CURDIR)/mutants nice -n 19 $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(VENV)/bin/mutmut results

## Load 1 million synthetic patrons into PostgreSQL and print import rate and lookup latency
bench-register: $(STAMP)
	$(PY) bench/register.py $(BENCH_ARGS)

## One gunicorn worker on PostgreSQL + Redis (database 15, flushed): logins and verify API vs bare argon2, token endpoint vs minimal Flask
bench-oidc: $(STAMP)
	$(PY) bench/oidc.py $(BENCH_ARGS)

## One gunicorn worker on PostgreSQL + Redis with 1 million patrons: client credentials tokens/s, lookups/s, lookup p50/p99 at half that rate
bench-api: $(STAMP)
	$(PY) bench/api.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache mutants

## Refresh idp/translations after changing user-facing strings (then translate the new entries)
translations: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --omit-header -o var/messages.pot .
	$(VENV)/bin/pybabel update -i var/messages.pot -d idp/translations --no-fuzzy-matching
