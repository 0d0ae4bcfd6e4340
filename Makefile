# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Customer hosts are old: the agent's tests also run on Python 3.9 when one is found.
# A pyenv shim named python3.9 exists even when 3.9 is not active, so each candidate must run.
PY39 ?= $(shell for p in "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.9*/bin/python3.9 /usr/bin/python3.9 /usr/local/bin/python3.9 "$$(command -v python3.9)"; do \
	  [ -x "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null && { echo "$$p"; break; }; done)

# Each test file runs whole on one of three workers (module fixtures start their servers once).
XDIST ?= -n 3 --dist loadfile

.PHONY: demo test test-py39 system-deps lint bench clean dist

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,server]'
	touch $@

system-deps:
	scripts/system-deps.sh

demo: $(VENV)/.stamp
	scripts/system-deps.sh --demo
	$(PY) scripts/demo.py

test: system-deps $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)
	$(MAKE) test-py39

# The agent side on Python 3.9: collection, bundle and sealing tests (no server extra). The
# packaging tests are not repeated: they run the pyz on 3.9, 3.11 and 3.13 themselves.
test-py39:
	@if [ -z "$(PY39)" ]; then \
	  if [ "$$MYDIAG_REQUIRE_PY39" = 1 ]; then echo "python3.9 not found (needed: MYDIAG_REQUIRE_PY39=1)"; exit 1; fi; \
	  echo "note: no python3.9 found; agent tests ran on $$($(PY) --version) only"; \
	else \
	  [ -x .venv39/bin/python ] || $(PY39) -m venv .venv39; \
	  .venv39/bin/python -m pip install -q -e '.[dev]'; \
	  .venv39/bin/python -m pytest -m "not server" -q $(XDIST) --ignore=tests/packaging $(PYTEST_ARGS39); \
	fi

# The customer side in one file, and as packages: dist/mydiag.pyz, man pages, bash
# completion, dist/*.deb and dist/*.rpm (docs/install.md).
dist: $(VENV)/.stamp
	$(PY) scripts/build_pyz.py --out dist/mydiag.pyz
	$(PY) scripts/gen_manpages.py --out build/man
	$(PY) scripts/gen_completion.py --out build/completion
	$(PY) scripts/build_deb.py --pyz dist/mydiag.pyz --man build/man --completion build/completion --out dist
	$(PY) scripts/build_rpm.py --pyz dist/mydiag.pyz --man build/man --completion build/completion --out dist

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

bench: $(VENV)/.stamp
	scripts/system-deps.sh --bench
	@echo "benchmarks: see bench/README.md (each script runs on its own)"

clean:
	rm -rf $(VENV) .venv39 .demo build dist *.egg-info
