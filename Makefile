# The reference Job's entry points. `make` lists them.
#
# Settings (environment or command line):
#   CONTAINER_TOOL  docker or podman (default: the first whose engine answers)
#   DEMO            kind, pod or local: which runtime `make demo` uses (default: the most real)
#   KIND_CLUSTER    the kind cluster's name (default: native-sidecar)
#   K8S             1.28 runs the cluster from cluster-1.28.yaml (default: 1.37, cluster.yaml)
#   APP_SLEEP       how long the app works in `local` and `pod` (default: 2s)
#   PLATFORMS       the platforms `images` builds (default: the engine's own, for kind)
#   REGISTRY        where `push` sends the images: host[:port]/path
# The scripts read them, and hold their defaults.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

include images.env
export APP_IMAGE SIDECAR_IMAGE VERSION

CARGO ?= cargo

VENV := .venv
KIND_DEMO := scripts/kind-demo.sh

.PHONY: help build test lint check bench local images push pod demo demo-kind demo-legacy \
	kind-up kind-down kind-load deploy logs clean

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

demo: ## Run the Job's lifecycle on kind, else in containers, else as processes (DEMO= picks)
	scripts/demo.sh

check: lint test ## Everything CI checks: lint, then every test

build: ## Build both binaries, release profile
	$(CARGO) build --workspace --release --locked

test: $(VENV) ## Run every test: the binaries' (cargo), then manifests, scripts, images (pytest)
	$(CARGO) test --workspace --locked
	$(VENV)/bin/pytest tests

lint: $(VENV) ## rustfmt, clippy, rustdoc, cargo-deny, hadolint and shellcheck
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked --quiet
	$(VENV)/bin/cargo-deny --locked check licenses bans sources
	$(VENV)/bin/hadolint docker/Dockerfile
	$(VENV)/bin/shellcheck --external-sources scripts/*.sh scripts/lib/*

bench: ## Measure the sidecar against a bare hyper server (wrk on loopback): table + bench/results.json
	python3 scripts/bench.py --locked --out bench/results.json $(BENCH_ARGS)

local: build ## The lifecycle with plain processes: sidecar, app, SIGTERM, timeline
	scripts/local.sh

images: ## Build both images for this machine (kind); PLATFORMS=linux/amd64,linux/arm64 for one multi-arch image
	scripts/images.sh

push: ## Push both images, every platform built, to REGISTRY=host[:port]/path; prints NAME@sha256:DIGEST
	scripts/images.sh push

pod: images ## The lifecycle in two containers sharing a network namespace, as in a Pod
	scripts/pod.sh

demo-kind: ## The lifecycle on kind: cluster, images, job.yaml, timeline (the full demo)
	$(KIND_DEMO) check
	$(MAKE) images
	$(KIND_DEMO) demo

demo-legacy: ## job-legacy.yaml on kind: passes when it runs into its deadline
	$(KIND_DEMO) check
	$(MAKE) images
	$(KIND_DEMO) demo-legacy

kind-up: ## Create the kind cluster (idempotent)
	$(KIND_DEMO) up

kind-down: ## Delete the kind cluster (idempotent)
	$(KIND_DEMO) down

kind-load: ## Copy both images into the kind cluster's node
	$(KIND_DEMO) load

deploy: ## (Re)create job.yaml's Job on the kind cluster
	$(KIND_DEMO) deploy

logs: ## Logs of both containers of the Job's Pod
	$(KIND_DEMO) logs

clean: ## Remove build outputs and the test tools' virtualenv
	$(CARGO) clean
	rm -rf $(VENV) .pytest_cache

$(VENV): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $(VENV)
