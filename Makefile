# Two commands do all set-up: `make run` and `make test`. Both create the virtualenv from the
# pinned requirements.lock when it is missing or out of date, and are quick once it exists.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: run test lint typecheck pytest bench golden lock clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "aggregator needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-virtualenv -r requirements.lock
	$(PIP) install --require-virtualenv --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The daemon on the database feeds.yaml names (settings.database); AGGREGATOR_DB overrides it.
run: $(STAMP)
	$(BIN)/aggregator --config feeds.yaml run

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# On every core and two workers more (`-n auto`, counted in tests/conftest.py; pytest-xdist is
# configured in pyproject.toml); `make pytest WORKERS=0` runs in one process. Bytecode is
# cached in the virtualenv even where PYTHONDONTWRITEBYTECODE is set: the suite starts some
# 150 Python processes, and each would compile the package again.
WORKERS ?= auto
pytest: $(STAMP)
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache \
		$(BIN)/pytest -q -n $(WORKERS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Rewrite the golden files' expected output from the current code; review with git diff.
golden: $(STAMP)
	$(BIN)/python -m tests.golden.regenerate

# Re-pin after editing dependencies in pyproject.toml (needs network to PyPI).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade -e '.[dev]' setuptools wheel
	.lock-venv/bin/pip freeze --exclude-editable --all | grep -v '^pip==' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
