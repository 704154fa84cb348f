# Tasks of the BlueChi workbench. `ci/setup.sh` installs what these need on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build every binary (daemons, bluechictl, emulator, scenario runner).
build:
    cargo build --workspace --bins

# Run one scenario (a name from scenarios/ or a path) on the local backend.
scenario NAME *ARGS: build
    target/debug/scenario {{ARGS}} {{NAME}}

# Run every scenario on the local backend.
scenarios: build
    target/debug/scenario scenarios/*.scenario

# Re-record a scenario's snapshot after a deliberate change.
scenario-update NAME: build
    target/debug/scenario --update {{NAME}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The whole test suite: unit tests of every crate, the scenarios, cross-crate tests.
test: build
    cargo test --workspace --no-fail-fast

# What CI runs.
ci: lint test

# Benchmarks (printed figures, not asserted): scenario wall times, daemon RSS, job latency
# through BlueChi against the emulator alone, the controller with 100 nodes, oneshot jobs/s and
# unit-file load time/memory against systemd 252 in Podman. ARGS go to bluechi-bench (`--help`).
bench *ARGS:
    ci/bench.sh {{ARGS}}

# Re-record the emulator's conformance fixtures against real systemd 252 in Podman (root,
# podman, runc, debootstrap; builds the base image offline on first use), then replay them.
conformance *CASES:
    ci/conformance.sh {{CASES}}
