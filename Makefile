# The two commands of the README: `make demo` and `make test`. Each bootstraps .venv and system packages.
PY := .venv/bin/python

.PHONY: demo test lint bundle corpus clean

demo:
	@scripts/bootstrap.sh view,mic
	$(PY) -m runtime.mic_demo --demo

test:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m pytest

lint:
	@scripts/bootstrap.sh train,export,dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf .venv .pytest_cache .ruff_cache
