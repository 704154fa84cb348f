# Tasks of the BlueChi workbench. `ci/setup.sh` installs what these need on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build every binary (daemons, bluechictl, emulator, scenario runner).
build:
    cargo build --workspace --bins

# Run one scenario (a name from scenarios/ or a path); ARGS e.g. `--backend all`, `--keep`.
scenario NAME *ARGS: build
    target/debug/scenario {{ARGS}} {{NAME}}

# Run every scenario (on the local backend unless ARGS say `--backend ...`).
scenarios *ARGS: build
    target/debug/scenario {{ARGS}} scenarios/*.scenario

# Re-record a scenario's snapshot after a deliberate change.
scenario-update NAME: build
    target/debug/scenario --update {{NAME}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The whole test suite: unit tests of every crate, the scenarios on every backend, cross-crate
# tests. cargo-nextest runs each test in its own process; container tests one at a time and
# hung tests are killed (.config/nextest.toml). Without nextest, plain cargo test. (The
# workspace has no doctests.)
test: build
    if command -v cargo-nextest >/dev/null; then cargo nextest run --workspace --no-fail-fast; else cargo test --workspace --no-fail-fast; fi

# What CI runs.
ci: lint test

# Benchmarks (printed figures, not asserted): scenario wall times, daemon RSS, job latency
# through BlueChi against the emulator alone, the controller with 100 nodes, status latency under
# a non-reading flood, proxy churn failures, oneshot jobs/s and unit-file load time/memory
# against systemd 252 in Podman. ARGS go to bluechi-bench (`--help`).
bench *ARGS:
    ci/bench.sh {{ARGS}}

# Re-record the emulator's conformance fixtures against real systemd 252 in Podman (root,
# podman, runc, debootstrap; builds the base image offline on first use), then replay them.
conformance *CASES:
    ci/conformance.sh {{CASES}}

# The live differential proptest: N fresh random unit graphs (`conformance::generate`), recorded
# against real systemd 252 in Podman, replayed against the emulator; prints the agreement.
conformance-generate N:
    #!/usr/bin/env bash
    set -euo pipefail
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
    export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/containers/containers.conf}"
    ci/conformance.sh --image-only
    cargo build -q -p systemd-emulator --bin conformance-record --bin conformance-generate
    dir="$(mktemp -d /var/tmp/conformance-generate.XXXXXX)"
    "$CARGO_TARGET_DIR/debug/conformance-generate" write --out "$dir" --count {{N}} >/dev/null
    "$CARGO_TARGET_DIR/debug/conformance-record" --cases "$dir" --fixtures "$dir" \
        --image "${CONFORMANCE_IMAGE:-localhost/bluechi-conformance-systemd252:latest}" \
        || echo "conformance-generate: some cases could not be recorded" >&2
    echo "conformance-generate: cases and fixtures in $dir"
    "$CARGO_TARGET_DIR/debug/conformance-generate" compare "$dir"

# The offline node images for container backends (base, podman-systemd, podman-emulator), built
# only when their inputs changed; prints name=ref lines. ARGS: --bin-dir DIR, --base-only.
images *ARGS:
    ci/images.sh {{ARGS}}
