# One entry point for humans and CI. Every target creates what it needs on a fresh machine
# (Python 3.11+, make, the package index); nothing else is assumed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The embedded default: a local directory store, the committed data sample.
RUN_STORE ?= file://$(CURDIR)/.local/store
RUN_DATA ?= data/creditcard_train.csv.gz
RUN_EVAL ?= data/creditcard_eval.csv.gz
RUN_WORK ?= .local/work
# make run PORT=8001 (else FRAUD_BIND, else 127.0.0.1:8000)
PORT ?=

.PHONY: install run test lint typecheck pytest bench bench-quality bench-train bench-live bench-hostile bench-compare images-offline lock clean

install: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	@echo "make install: installing the development packages (requirements/dev.lock) into $(VENV)/ ..."
	@set -o pipefail; $(BIN)/python -m pip install --require-hashes --no-deps --disable-pip-version-check \
		-r requirements/dev.lock | { grep --line-buffered -E '^(Collecting|Successfully)' || true; } | cut -c1-100
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	touch $@

## run: train on the committed training rows if no production model exists, promote it into a
## local store (judged on the committed evaluation rows), and serve it on 127.0.0.1:8000.
## Its environment holds what training and serving need (requirements/train.lock: 54 packages,
## no test tools), so a first run installs in ~35 s rather than the dev lock's two minutes.
RUN_VENV := .venv-run
$(RUN_VENV)/.installed: requirements/train.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@echo "make run: installing the serving and training packages (requirements/train.lock) into $(RUN_VENV)/ ..."
	@rm -rf $(RUN_VENV)
	@$(PYTHON) -m venv $(RUN_VENV)
	@set -o pipefail; $(RUN_VENV)/bin/python -m pip install --require-hashes --no-deps --disable-pip-version-check \
		-r requirements/train.lock | grep --line-buffered -E '^(Collecting|Installing|Successfully)' | cut -c1-100
	@touch $@

# This checkout on the environment's path (a .pth file, as an editable install makes, without a
# build step), and `fraudctl` in its bin/: the README's training commands then run as pasted.
$(RUN_VENV)/bin/fraudctl: $(RUN_VENV)/.installed
	@$(RUN_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))' \
		| xargs -I{} sh -c 'echo "$(CURDIR)" > "{}/fraud-scoring-checkout.pth"'
	@printf '#!/bin/sh\nexec "%s" -m ml.cli "$$@"\n' "$(CURDIR)/$(RUN_VENV)/bin/python" > $@
	@chmod +x $@

run: $(RUN_VENV)/bin/fraudctl
	@$(RUN_VENV)/bin/python -m ml.cli run-local --store "$(RUN_STORE)" \
		--data "$(RUN_DATA)" --eval-data "$(RUN_EVAL)" --work-dir "$(RUN_WORK)" $(if $(PORT),--port $(PORT))

## test: lint, format check, import contracts (.importlinter), type checks, deployment-file checks and the whole pytest suite.
test: lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

## bench: the service as it runs in production. The server runs from .venv-serve, made from the
## serving lock only (no pandas: scikit-learn would import it and inflate every worker).
SERVE_VENV := .venv-serve
$(SERVE_VENV)/.installed: requirements/serve.lock pyproject.toml
	rm -rf $(SERVE_VENV)  # from scratch: pip would leave packages the lock no longer names
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/serve.lock
	touch $@

bench: install $(SERVE_VENV)/.installed
	$(BIN)/python -m bench.run --serve-python $(CURDIR)/$(SERVE_VENV)/bin/python

## bench-quality: quality on the committed evaluation rows at production prevalence, 6 seeds.
bench-quality: install
	$(BIN)/python -m bench.quality --seeds 6

## bench-train: training time and peak memory at the full dataset's size (284,807 rows).
bench-train: install
	$(BIN)/python -m bench.train_scale

## bench-live: `fraudctl evaluate --live` over a decision log of a million captured rows.
bench-live: install
	$(BIN)/python -m bench.live_quality

## bench-hostile: the reliability issue's adversarial cases rerun against a real server: 500s,
## wrong-model answers, the innocent client's slowest answer, worker RSS, idle connections let go.
bench-hostile: install
	$(BIN)/python -m bench.hostile

## bench-compare: this tree's service against BASELINE's (a git ref) in alternating rounds:
## cold start, /predict c=32 and batch throughput as ratios from one run.
BASELINE ?= HEAD~1
bench-compare: install $(SERVE_VENV)/.installed
	$(BIN)/python -m bench.compare --baseline $(BASELINE) --serve-python $(CURDIR)/$(SERVE_VENV)/bin/python

## images-offline: what `docker compose -f docker-compose.yml -f docker-compose.offline.yml`
## needs where no container registry can be reached: a Python base made from Debian's packages
## (root, mmdebstrap) and an S3-compatible stand-in for MinIO, built from the package index.
OFFLINE_BASE ?= fraud-python:3.11-bookworm
images-offline:
	infra/local/build-base-image.sh $(OFFLINE_BASE)
	DOCKER_BUILDKIT=0 docker build --quiet --build-arg PYTHON_IMAGE=$(OFFLINE_BASE) \
		-t fraud-s3-standin:local infra/local/s3-standin

## lock: regenerate the hash-pinned lock files from pyproject.toml (needs uv).
lock:
	uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -o requirements/serve.lock
	uv pip compile pyproject.toml --extra train --universal --python-version 3.11 --generate-hashes -o requirements/train.lock
	uv pip compile pyproject.toml --extra train --extra dev --universal --python-version 3.11 --generate-hashes -o requirements/dev.lock

clean:
	rm -rf $(VENV) .venv-serve $(RUN_VENV) .local .mypy_cache .ruff_cache .pytest_cache
