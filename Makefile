# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# Hard ceilings so a hung test fails the run instead of eating CI's 90 minutes.
SUITE_TIMEOUT ?= 50m
POSTGRES_TIMEOUT ?= 25m
BENCH_TIMEOUT ?= 30m

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
define pytest
	rc=0; timeout --signal=INT -k 60 $(1) $(PYTEST) $(2) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: $(2)" >&2; exit 1; fi; \
	if [ $$rc -eq 124 ]; then echo "pytest timed out after $(1): $(2)" >&2; fi; \
	exit $$rc
endef

.PHONY: install run test test-sqlite test-postgres bench peer-check clean

install:
	@ops/install.sh

run: install
	@$(PYTHON) -m ops.run serve

# Both halves run even when the first fails, so one CI run reports everything.
test: install
	@rc=0; \
	$(MAKE) --no-print-directory test-sqlite || rc=1; \
	$(MAKE) --no-print-directory test-postgres || rc=1; \
	exit $$rc

test-sqlite:
	@echo "== whole suite, SQLite =="
	@$(call pytest,$(SUITE_TIMEOUT),--ignore=tests/bench -m "not bench")

test-postgres:
	@echo "== portal and worker, PostgreSQL =="
	@export ASSAY_TEST_DB=postgresql; \
	$(call pytest,$(POSTGRES_TIMEOUT),tests/portal tests/worker -m "not bench and not e2e")

bench: install
	@mkdir -p var/bench
	@export ASSAY_BENCH_RESULTS=var/bench/results.json; \
	$(call pytest,$(BENCH_TIMEOUT),tests/bench -p no:cacheprovider)
	@cat var/bench/results.json 2>/dev/null || echo "no figures recorded (bench_record fixture)"

# The catalogers against a peer's own fixtures: PEER=<a work tree of aquasecurity/trivy>.
peer-check: install
	@test -n "$(PEER)" || { echo "usage: make peer-check PEER=<path of a trivy work tree>" >&2; exit 2; }
	@$(PYTHON) tests/peer/crosscheck.py "$(PEER)"

clean:
	rm -rf .pytest_cache test-output
