#!/usr/bin/env bash
# Re-records the differential conformance fixtures against real systemd 252 in Podman, then
# replays them against the emulator. Needs root, podman, runc and debootstrap.
#   ci/conformance.sh            build image if missing, record all cases, replay
#   ci/conformance.sh CASE...    record only the named cases
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
image="${CONFORMANCE_IMAGE:-localhost/bluechi-conformance-systemd252:latest}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/containers/containers.conf}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

for tool in podman runc; do
    command -v "$tool" >/dev/null || { echo "conformance: $tool not installed (apt-get install podman runc debootstrap)" >&2; exit 2; }
done

# The image is the node base image of ci/images.sh (debootstrap bookworm + systemd 252, built
# offline since no container registry is reachable; one recipe for every image), under this name.
if ! podman image exists "$image"; then
    base="$("$root/ci/images.sh" --base-only | sed -n 's/^base=//p')"
    podman tag "$base" "$image"
fi

if [ "${1:-}" = "--image-only" ]; then
    exit 0
fi

cargo build -q -p systemd-emulator --bin conformance-record
"$CARGO_TARGET_DIR/debug/conformance-record" \
    --image "$image" \
    --cases "$root/emulator/conformance/cases" \
    --fixtures "$root/emulator/conformance/fixtures" \
    "$@"
cargo test -q -p systemd-emulator --test conformance -- --nocapture
