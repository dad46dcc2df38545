# The reference Job's entry points. `make` lists them.
#
# Settings (environment or command line):
#   CONTAINER_TOOL  docker or podman (default: the first whose engine answers)
#   DEMO            kind, pod or local: which runtime `make demo` uses (default: the most real)
#   KIND_CLUSTER    the kind cluster's name (default: native-sidecar)
#   K8S             1.37 (cluster.yaml, the default), 1.35 (cluster-1.35.yaml) or 1.28 (cluster-1.28.yaml)
#   APP_SLEEP       how long the app works in `local` and `pod` (default: 2s)
#   PLATFORMS       the platforms `images` builds (default: the engine's own, for kind)
#   REGISTRY        where `push` sends the images: host[:port]/path
#   REPORT          a directory where `test` and `test-arm64` also leave their results (check sets it)
#   RELEASES        the releases `e2e-matrix` runs, of e2e/releases (default: all)
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

.PHONY: help build test test-arm64 lint check check-tools bench local images push sbom pod demo demo-kind demo-legacy \
	kind-up kind-down kind-load deploy logs e2e-node e2e-kind e2e-matrix mutants clean

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

demo: ## Run the Job's lifecycle on kind, else in containers, else as processes (DEMO= picks)
	scripts/demo.sh

# Each step's result and the tests' own reports go to CHECK_REPORT; the summary is printed last,
# whichever step stopped the run.
CHECK_REPORT := target/check

check: ## Everything CI checks: its tools first, lint, every test, the Rust tests again for arm64; then a summary
	@rm -rf $(CHECK_REPORT) && mkdir -p $(CHECK_REPORT)
	@status=0; \
	for step in check-tools lint test test-arm64; do \
	  if $(MAKE) $$step REPORT=$(CHECK_REPORT); then echo "$$step ok" >>$(CHECK_REPORT)/steps; \
	  else status=$$?; echo "$$step failed" >>$(CHECK_REPORT)/steps; break; fi; \
	done; \
	python3 scripts/check-summary.py $(CHECK_REPORT) 2>/dev/null \
	  || echo "make check, without python3 for the rest of its summary:" $$(<$(CHECK_REPORT)/steps); \
	exit $$status

check-tools: ## What make check needs: all that is missing, named at once, before anything runs
	scripts/check-tools.sh

build: ## Build both binaries, release profile
	$(CARGO) build --workspace --release --locked

test: $(VENV) ## Run every test: the binaries' (cargo), then manifests, scripts, images (pytest)
	$(CARGO) test --workspace --locked $(if $(REPORT),2>&1 | tee $(REPORT)/cargo-test.log)
	$(VENV)/bin/pytest -rs tests --ignore=tests/e2e_node --ignore=tests/e2e_kind $(if $(REPORT),--junitxml=$(REPORT)/pytest.xml)

# The arm64 tier: the images ship arm64 binaries, so their tests run on arm64 too. Built with
# rust-lld (no C cross toolchain: no dependency compiles C) and run through qemu-user, named as
# cargo's runner, on any other machine. The tests start the binaries through that same runner
# (testkit::cargo_bin). Never through a binfmt handler: registering one changes the whole machine.
ARM64_TARGET := aarch64-unknown-linux-musl
# Natively only on arm64 Linux: the binaries are Linux binaries (and the tests read /proc).
ARM64_RUNNER = $(if $(filter Linux-aarch64 Linux-arm64,$(shell uname -s)-$(shell uname -m)),,qemu-aarch64-static)

test-arm64: ## The Rust tests built for arm64 (aarch64 musl), run under qemu-aarch64-static off arm64
	@[[ -z "$(ARM64_RUNNER)" ]] || command -v $(ARM64_RUNNER) >/dev/null \
	  || { echo "test-arm64: $(ARM64_RUNNER) is missing (Debian, Ubuntu: apt-get install qemu-user-static)" >&2; exit 1; }
	@[[ -d "$$(rustc --print sysroot)/lib/rustlib/$(ARM64_TARGET)" ]] || rustup target add $(ARM64_TARGET)
	@[[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] \
	  || echo "test-arm64: warning: this machine runs arm64 binaries through binfmt, so a test that starts one without qemu goes unnoticed" >&2
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
	  $(if $(ARM64_RUNNER),CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=$(ARM64_RUNNER)) \
	  $(CARGO) test --workspace --locked --target $(ARM64_TARGET) $(if $(REPORT),2>&1 | tee $(REPORT)/cargo-test-arm64.log)

lint: $(VENV) ## rustfmt, clippy, rustdoc, cargo-deny, hadolint and shellcheck
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked --quiet
	$(VENV)/bin/cargo-deny --locked check licenses bans sources
	$(VENV)/bin/hadolint docker/Dockerfile e2e/*/Dockerfile
	$(VENV)/bin/shellcheck --external-sources scripts/*.sh scripts/lib/* e2e/*.sh e2e/*/*.sh .ci/run .ci/*.sh

# The real-kubelet tier: upstream Kubernetes's own parts, built from its Go modules (e2e/), as root
# processes on this machine, then job.yaml and job-legacy.yaml through make demo's own code.
e2e-node: $(VENV) ## job.yaml on a real kubelet, containerd and API server, built from upstream's Go modules (root, Linux; K8S=1.35)
	@case "$${K8S:-1.37}" in 1.37|1.35) ;; *) echo "make e2e-node: K8S must be 1.37 or 1.35; make e2e-matrix RELEASES=$$K8S runs the others" >&2; exit 2 ;; esac
	e2e/node.sh check
	$(MAKE) images
	$(VENV)/bin/pytest -rs tests/e2e_node

# The users' own commands on kind: a cluster made from cluster.yaml by kind v0.33.0, on a node
# image built here from upstream's parts, as CI's machine reaches no registry (docs/e2e-kind.md).
e2e-kind: $(VENV) ## make images, kind-load, demo and demo-legacy, and job.yaml, on kind made from cluster.yaml (root, podman, Go, debootstrap; K8S=1.35, 1.28)
	@$(KIND_DEMO) config >/dev/null
	@[[ $$(id -u) == 0 ]] && command -v podman >/dev/null && command -v go >/dev/null && command -v debootstrap >/dev/null \
	  || { echo "make e2e-kind: needs root, podman, Go and debootstrap (it builds kind and the node image, and runs kind's nodes with podman)" >&2; exit 3; }
	$(VENV)/bin/pytest -rs tests/e2e_kind

# The same node on every release of e2e/releases, 1.28 to 1.38: what each does, observed.
e2e-matrix: $(VENV) ## test_releases.py and test_lifecycle.py on every release of e2e/releases, one node each; writes docs/versions.md's table (root; hours)
	e2e/node.sh check
	$(MAKE) images
	e2e/matrix.sh $(RELEASES)

mutants: ## Mutation testing (cargo-mutants, .cargo/mutants.toml): every mutant must be caught; slow, CI runs it weekly
	$(CARGO) mutants --workspace

bench: ## Measure the sidecar against a bare hyper server (wrk on loopback): table + bench/results.json
	python3 scripts/bench.py --out bench/results.json $(BENCH_ARGS)

local: build ## The lifecycle with plain processes: sidecar, app, SIGTERM, timeline
	scripts/local.sh

images: ## Build both images for this machine (kind); PLATFORMS=linux/amd64,linux/arm64 for one multi-arch image
	scripts/images.sh

# SBOMs, a build output: a CycloneDX document per image (app, sidecar) and platform, listing the
# crates its binary is built from, at Cargo.lock's versions, for that target. The images build
# both binaries in one cargo command, so their features are unified, as cargo-cyclonedx resolves
# them too. Dated with the commit (SOURCE_DATE_EPOCH). The tool writes next to each Cargo.toml;
# the files move under target/sbom/.
CYCLONEDX_VERSION := 0.5.9
CYCLONEDX := .cache/tools/cargo-cyclonedx-$(CYCLONEDX_VERSION)/bin/cargo-cyclonedx
SBOM_TRIPLES := x86_64-unknown-linux-musl aarch64-unknown-linux-musl

sbom: $(CYCLONEDX) ## CycloneDX SBOMs, one per image and platform: target/sbom/TRIPLE/{app,sidecar}.cdx.json
	@export SOURCE_DATE_EPOCH="$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct)}"; \
	for triple in $(SBOM_TRIPLES); do \
	  $(CYCLONEDX) cyclonedx --quiet --format json --spec-version 1.5 --describe binaries \
	    --target "$$triple"; \
	  mkdir -p "target/sbom/$$triple"; \
	  for bin in app sidecar; do \
	    mv "$$bin/$${bin}_bin.cdx.json" "target/sbom/$$triple/$$bin.cdx.json"; \
	    echo "target/sbom/$$triple/$$bin.cdx.json"; \
	  done; \
	done

# Pinned, in the repository's .cache. Built unoptimised: it runs for a tenth of a second, and
# builds in 1m46s instead of 4m16s here. Said on stderr: `make sbom`'s stdout is the list of SBOMs.
$(CYCLONEDX):
	@echo "cargo install cargo-cyclonedx@$(CYCLONEDX_VERSION) into $(dir $(@D))" >&2
	@$(CARGO) install --locked --debug --quiet --root $(dir $(@D)) cargo-cyclonedx@$(CYCLONEDX_VERSION)

push: ## Push both images, every platform built, to REGISTRY=host[:port]/path; prints NAME@sha256:DIGEST
	scripts/images.sh push

# Builds the images only when they are not this commit's already, so a warm run needs no builder.
pod: ## job.yaml's Pod in two containers sharing a network namespace (needs kubectl and curl; offline)
	scripts/images.sh current || scripts/images.sh
	scripts/pod.sh

demo-kind: ## The lifecycle on kind: tools, cluster, images, job.yaml, timeline (the full demo)
	$(KIND_DEMO) demo

demo-legacy: ## job-legacy.yaml on kind: passes when it runs into its deadline
	$(KIND_DEMO) demo-legacy

kind-up: ## Create the kind cluster (idempotent)
	$(KIND_DEMO) up

kind-down: ## Delete the kind cluster (idempotent)
	$(KIND_DEMO) down

kind-load: ## Copy both images into the kind cluster's nodes, as single-platform archives
	$(KIND_DEMO) load

deploy: ## (Re)create job.yaml's Job on the kind cluster
	$(KIND_DEMO) deploy

logs: ## Logs of both containers of the Job's Pod
	$(KIND_DEMO) logs

clean: ## Remove build outputs, the test tools (the virtualenv, .cache/tools), make e2e-node's binaries (.cache/e2e) and make e2e-kind's (.cache/kind)
	$(CARGO) clean
	rm -rf $(VENV) .pytest_cache .cache/tools .cache/e2e .cache/kind

$(VENV): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $(VENV)
