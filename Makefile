# Engram: the one entry point. `make serve` runs the server; `make test` installs whatever is
# missing (Python venv, Node, Go and Rust dependencies) and runs every check of every language.
#
# Each SDK directory has its own Makefile with the targets setup / generate / lint / test (and
# optionally check-generate, clean); this file calls `$(MAKE) -C sdk-xxx <target>` for every SDK
# directory that has one. See docs/development.md for the contract.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
# uv lives in a venv of its own, so that the runtime environment of `make serve` holds nothing
# but the server and what it imports.
UV_VENV := .uv
UV := $(UV_VENV)/bin/uv
# `make serve`'s environment: requirements/runtime.lock and the server, nothing for development.
SERVE_VENV := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.engram-serve
SETUP_STAMP := $(VENV)/.engram-setup
# NO_SETUP=1 uses $(VENV) as it is (never installs into it): for tests that run targets in a
# temporary copy of the tree against the repository's environment.
SETUP := $(if $(NO_SETUP),,$(SETUP_STAMP))
# buf's platform package for this machine (tools/package.json lists linux x64 and aarch64).
BUF = $(firstword $(wildcard tools/node_modules/@bufbuild/buf-*/bin/buf) tools/node_modules/.bin/buf)
TOOLS_NODE_STAMP := tools/node_modules/.package-lock.json
# Every requirements/*.in except those of separate environments (peers: bench/.peers-venv).
# runtime.lock pins what the server needs to run; dev.lock builds on it (the same versions).
LOCK_INPUTS := $(filter-out requirements/peers.in,$(sort $(wildcard requirements/*.in)))
LOCK_FLAGS := --universal --python-version 3.11 --custom-compile-command "make lock" -q
# SDKs built by their own Makefile (sdk-python is driven from here: it shares the root venv).
SDKS := $(patsubst %/Makefile,%,$(sort $(wildcard sdk-typescript/Makefile sdk-go/Makefile sdk-rust/Makefile)))
PYTHON_PROJECTS := server sdk-python
# The editable projects' bytecode (incremental: only changed files). See $(SETUP_STAMP).
COMPILE_LOCAL = @$(PY) -m compileall -q server/src sdk-python/src >/dev/null
has_target = grep -qE '^$(2):' $(1)/Makefile

.PHONY: help setup lock generate check-generate lint lint-proto lint-python lint-sdks docs test \
        test-python test-sdks doctest serve image image-save conformance bench bench-full stress clean distclean \
        cluster cluster-down cluster-tools conformance-cluster

help:
	@echo "make serve           run engram-server from its runtime environment (.venv-serve: requirements/runtime.lock only)"
	@echo "make test            install what is missing, then check-generate, lint, docs and every test"
	@echo "make image           the server's container image, localhost/engram-server (podman; see docs/operations/container.md)"
	@echo "make image-save      the image as an OCI archive in dist/ (docker load / podman load); FORMAT=docker-archive for Docker's own"
	@echo "make setup           .venv from requirements/dev.lock, tools/ and SDK dependencies (idempotent)"
	@echo "make generate        regenerate all code and docs derived from proto/"
	@echo "make check-generate  fail when generated files are stale"
	@echo "make lint            buf lint + breaking, OpenAPI path conflicts, ruff, mypy --strict, SDK linters"
	@echo "make docs            mkdocs build --strict (into site/)"
	@echo "make doctest         run every code block of README.md, docs/quickstart.md, docs/sdk/, docs/cli.md, docs/mcp.md, docs/integrations/"
	@echo "make lock            re-pin requirements/*.in into requirements/runtime.lock and dev.lock"
	@echo "make cluster         a local three-node cluster (3 etcd, 3 NATS JetStream, 3 Engram) on loopback; make cluster-down stops it"
	@echo "make cluster-tools   build etcd and nats-server from their pinned Go modules into build/cluster/bin"
	@echo "make conformance | bench | bench-full | stress | clean | distclean"

# ---------------------------------------------------------------------------------------------
# setup

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; rm -rf $(VENV); \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && \
	  $(PYTHON) -m venv $(VENV); }

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version'
	$(PYTHON) -m venv $(UV_VENV) || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; rm -rf $(UV_VENV); \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && \
	  $(PYTHON) -m venv $(UV_VENV); }
	$(UV_VENV)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

# The server alone, as `make serve` runs it: exactly the runtime lock, then the server (editable,
# so a checkout's changes apply). Bytecode is written by Python as modules are first imported.
$(SERVE_STAMP): requirements/runtime.lock server/pyproject.toml | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(SERVE_VENV)
	$(UV) pip sync -q -p $(SERVE_VENV)/bin/python requirements/runtime.lock
	$(UV) pip install -q -p $(SERVE_VENV)/bin/python --no-deps -e server
	@touch $@

# Exactly the locked packages (sync removes strays), the no-deps packages, then the two local
# projects in editable mode. Re-runs only when a lock file or a pyproject.toml changes.
# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (containers, CI)
# Python would otherwise compile every module on every start, about 1 s of each server start.
$(SETUP_STAMP): requirements/dev.lock server/pyproject.toml sdk-python/pyproject.toml | $(UV) $(PY)
	$(UV) pip sync -q --compile-bytecode -p $(PY) requirements/dev.lock
	$(UV) pip install -q -p $(PY) --no-deps -e server -e sdk-python
	$(COMPILE_LOCAL)
	@touch $@

$(TOOLS_NODE_STAMP): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(SETUP_STAMP) $(TOOLS_NODE_STAMP)
	@for sdk in $(SDKS); do $(MAKE) -C $$sdk setup; done

lock: | $(UV)
	$(UV) pip compile $(LOCK_FLAGS) requirements/runtime.in -o requirements/runtime.lock
	$(UV) pip compile $(LOCK_FLAGS) -c requirements/runtime.lock --override requirements/overrides.txt \
	  $(LOCK_INPUTS) -o requirements/dev.lock
	@echo "requirements/runtime.lock and requirements/dev.lock updated; run 'make setup'"

# The engines of cluster mode, built from their official Go modules, pinned by tools/cluster/go.mod
# and by hash in go.sum (docs/operations/cluster.md): etcd (control plane), nats-server (the log).
CLUSTER_BIN := build/cluster/bin
CLUSTER_TOOLS := $(CLUSTER_BIN)/etcd $(CLUSTER_BIN)/nats-server

$(CLUSTER_BIN)/etcd: tools/cluster/go.mod tools/cluster/go.sum tools/cluster/etcd/main.go
	cd tools/cluster && go build -mod=readonly -trimpath -o ../../$@ ./etcd

$(CLUSTER_BIN)/nats-server: tools/cluster/go.mod tools/cluster/go.sum
	cd tools/cluster && go build -mod=readonly -trimpath -o ../../$@ github.com/nats-io/nats-server/v2

cluster-tools: $(CLUSTER_TOOLS)

cluster: $(SETUP_STAMP) $(CLUSTER_TOOLS)
	$(PY) -m tools.cluster.local up

cluster-down:
	@if [ -x $(PY) ]; then $(PY) -m tools.cluster.local down; else echo "no environment: nothing runs"; fi

# ---------------------------------------------------------------------------------------------
# code generation

generate: $(SETUP)
	$(PY) -m tools.generate
	@if [ -f sdk-python/scripts/generate_api.py ]; then $(PY) sdk-python/scripts/generate_api.py; fi
	@for sdk in $(SDKS); do $(MAKE) -C $$sdk generate; done

# Regenerates into temporary copies and compares; lists every stale file. Needs no clean git tree.
check-generate: $(SETUP)
	@status=0; \
	$(PY) -m tools.generate --check || status=1; \
	if [ -f sdk-python/scripts/generate_api.py ]; then \
	  $(PY) sdk-python/scripts/generate_api.py --check || { echo "check-generate: stale: sdk-python/src/engram/_api.py"; status=1; }; fi; \
	for sdk in $(SDKS); do \
	  if $(call has_target,$$sdk,check-generate); then $(MAKE) -C $$sdk check-generate || status=1; fi; \
	done; \
	if [ $$status -ne 0 ]; then echo "check-generate: FAILED: run 'make generate' and commit the result"; fi; \
	exit $$status

# ---------------------------------------------------------------------------------------------
# lint

lint:
	@failed=""; \
	for t in lint-proto lint-python lint-sdks; do $(MAKE) $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "make lint: FAILED:$$failed"; exit 1; fi

# buf lint; buf breaking against the proto/ of branch main (when main has one), built from a
# `git archive` of it so that the check works before main has a buf.yaml; OpenAPI path conflicts.
lint-proto: $(SETUP) $(TOOLS_NODE_STAMP)
	$(BUF) lint
	@if git rev-parse -q --verify 'main^{commit}' >/dev/null 2>&1 && [ -n "$$(git ls-tree -d main proto 2>/dev/null)" ]; then \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  git archive main proto | tar -x -C "$$tmp"; cp buf.yaml "$$tmp/"; \
	  echo "$(BUF) breaking --against <main:proto>"; \
	  $(BUF) breaking --against "$$tmp"; \
	else echo "buf breaking: skipped (branch main has no proto/ yet)"; fi
	$(PY) -m tools.check_path_conflicts docs/openapi.json

# ruff and mypy --strict on the tools, the server and the Python SDK (generated code excluded by
# each project's configuration). A project without a [tool.mypy] section gets --strict here.
lint-python: $(SETUP)
	@status=0; \
	echo "== tools: ruff check, mypy --strict"; \
	$(VENV)/bin/ruff check tools || status=1; \
	$(VENV)/bin/mypy || status=1; \
	for p in $(PYTHON_PROJECTS); do \
	  echo "== $$p: ruff check, mypy --strict"; \
	  (cd $$p && ../$(VENV)/bin/ruff check .) || status=1; \
	  if grep -q '^\[tool\.mypy\]' $$p/pyproject.toml; then \
	    if grep -qE '^strict *= *true' $$p/pyproject.toml; then (cd $$p && ../$(VENV)/bin/mypy) || status=1; \
	    else echo "$$p/pyproject.toml: [tool.mypy] must set strict = true"; status=1; fi; \
	  else \
	    (cd $$p && ../$(VENV)/bin/mypy --strict --exclude '/_gen/' src) || status=1; \
	  fi; \
	done; \
	if [ $$status -ne 0 ]; then echo "lint-python: FAILED (see above)"; fi; \
	exit $$status

lint-sdks:
	@status=0; \
	for sdk in $(SDKS); do echo "== $$sdk: make lint"; $(MAKE) -C $$sdk lint || { echo "lint: $$sdk FAILED"; status=1; }; done; \
	exit $$status

# ---------------------------------------------------------------------------------------------
# docs, tests

docs: $(SETUP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Every step runs even when an earlier one failed (so one run shows every problem); the target
# fails at the end, naming the failed steps.
TEST_STEPS := check-generate lint docs test-python test-sdks doctest conformance conformance-cluster

test: setup
	$(COMPILE_LOCAL)
	@failed=""; \
	for step in $(TEST_STEPS); do \
	  if [ $$step = conformance ] && [ ! -f conformance/__main__.py ]; then \
	    echo "conformance: no runner yet (conformance/__main__.py)"; continue; fi; \
	  echo; echo "======== make $$step"; start=$$SECONDS; \
	  $(MAKE) $$step || failed="$$failed $$step"; \
	  echo "======== make $$step: $$((SECONDS - start)) s"; \
	done; \
	echo; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: all steps passed ($(TEST_STEPS))"

# One pytest run per project (each has its own conftest and configuration); each prints its own
# closing summary line.
test-python: $(SETUP) $(CLUSTER_TOOLS)
	@status=0; \
	echo "== pytest tools/tests $(wildcard tests)"; ENGRAM_REQUIRE_CLUSTER=1 $(PY) -m pytest tools/tests $(wildcard tests) || status=1; \
	for p in $(PYTHON_PROJECTS); do \
	  echo "== $$p: pytest"; (cd $$p && ../$(PY) -m pytest) || status=1; \
	done; \
	exit $$status

test-sdks:
	@status=0; \
	for sdk in $(SDKS); do echo "== $$sdk: make test"; $(MAKE) -C $$sdk test || { echo "test: $$sdk FAILED"; status=1; }; done; \
	exit $$status

# Docs that are executed (tools/doctest/__init__.py): every code block of README.md,
# docs/quickstart.md, docs/sdk/*.md, docs/cli.md, docs/mcp.md and docs/integrations/*.md runs
# against a real server, and every flag, command and ENGRAM_* variable they name must exist.
# After test-sdks, whose Rust build (sdk-rust/target) the Rust blocks reuse. ARGS: files, -v (every block's output), --keep.
doctest: setup
	$(COMPILE_LOCAL)
	$(PY) -m tools.doctest $(ARGS)

# ---------------------------------------------------------------------------------------------
# running

serve: $(SERVE_STAMP)
	exec $(SERVE_VENV)/bin/engram-server serve $(ARGS)

# The container image (tools/image.py): podman, runc and mmdebstrap from apt-get when missing, a
# Debian minbase from Debian's packages, then `podman build` of deploy/Containerfile. Reuses an
# image built from the same inputs. REFRESH_BASE=1 makes the Debian base again (updates).
FORMAT ?= oci-archive
image: | $(UV)
	$(PYTHON) -m tools.image build $(if $(REFRESH_BASE),--refresh-base)

image-save: image
	$(PYTHON) -m tools.image save --format $(FORMAT)

conformance: setup
	@if [ -f conformance/__main__.py ]; then $(PY) -m conformance $(ARGS); \
	else echo "conformance: the runner does not exist yet (conformance/__main__.py)"; exit 1; fi

# The same suite against a local three-node cluster, every SDK and transport on another node.
conformance-cluster: setup $(CLUSTER_TOOLS)
	$(PY) -m conformance --cluster $(ARGS)

bench: $(SETUP_STAMP)
	$(COMPILE_LOCAL)
	@if [ -f bench/Makefile ]; then $(MAKE) -C bench bench; \
	else echo "bench: the harness does not exist yet (bench/Makefile)"; exit 1; fi

bench-full: $(SETUP_STAMP)
	$(COMPILE_LOCAL)
	@if [ -f bench/Makefile ]; then $(MAKE) -C bench bench-full; \
	else echo "bench-full: the harness does not exist yet (bench/Makefile)"; exit 1; fi

# The long forms of the reliability tests (crash safety, soak, hostile input, the engine property
# test), and the bench harness's stress target when it has one.
stress: $(SETUP_STAMP)
	@ran=0; \
	if [ -f bench/Makefile ] && $(call has_target,bench,stress); then $(MAKE) -C bench stress; ran=1; fi; \
	if [ -d tests/reliability ]; then ENGRAM_STRESS=1 $(PY) -m pytest tests/reliability; ran=1; fi; \
	if [ -d tests/cluster ]; then $(MAKE) cluster-tools && ENGRAM_STRESS=1 ENGRAM_REQUIRE_CLUSTER=1 $(PY) -m pytest -s tests/cluster; fi; \
	(cd server && ENGRAM_STRESS=1 ../$(PY) -m pytest tests/engine/test_engine_model.py); \
	if [ $$ran -eq 0 ]; then echo "stress: no stress tests exist yet (tests/reliability, bench stress)"; exit 1; fi

clean:
	rm -rf site .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path '*/node_modules/*' -prune -exec rm -rf {} +
	@for sdk in $(SDKS); do if $(call has_target,$$sdk,clean); then $(MAKE) -C $$sdk clean; fi; done

distclean: clean
	rm -rf $(VENV) $(SERVE_VENV) $(UV_VENV) tools/node_modules
