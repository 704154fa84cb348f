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

# The base image is built offline from Debian packages, since no container registry is reachable.
if ! podman image exists "$image"; then
    command -v debootstrap >/dev/null || { echo "conformance: debootstrap not installed" >&2; exit 2; }
    dir="$(mktemp -d /var/tmp/conformance-rootfs.XXXXXX)"
    trap 'rm -rf "$dir"' EXIT
    echo "conformance: building $image with debootstrap (once, about a minute)" >&2
    # Quiet unless it fails: the installer's hundreds of lines go to a log shown on failure.
    log="$dir.log"
    if ! debootstrap --variant=minbase --include=systemd,dbus,systemd-sysv bookworm "$dir" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "conformance: debootstrap failed (full log: $log)" >&2
        exit 1
    fi
    tar -C "$dir" -c . | podman import --quiet \
        --change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$image" >/dev/null
    rm -f "$log"
    rm -rf "$dir"
    trap - EXIT
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
