#!/usr/bin/env bash
# Builds the offline node images (no container registry is reachable here), each only when its
# inputs changed:
#   base             debootstrap bookworm minbase + systemd 252, dbus, procps, iproute2;
#                    tagged with a hash of its recipe (the variables below)
#   podman-systemd   base + our BlueChi binaries, units, policy files; PID 1 real systemd 252
#   podman-emulator  podman-systemd + our systemd-emulator as PID 1 and its systemctl
# Node images are tagged with a hash of their inputs (Containerfile, staged files, parent image).
#
#   ci/images.sh [--bin-dir DIR] [--base-only]
#
# --bin-dir DIR: take the binaries from DIR as they are (default: $CARGO_TARGET_DIR/release,
# brought up to date with `cargo build --release` of the needed binaries first).
# --base-only: build (or find) the base image only.
#
# stdout: one `name=ref` line per image (base, podman-systemd, podman-emulator) for callers;
# stderr: one summary line per image; installer and build logs only when a step fails.
# Exit codes: 0 images ready, 1 a build failed, 2 a tool is missing on this machine.
# Needs root, podman, runc, and debootstrap when the base image has to be built.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/containers/containers.conf}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

say() { echo "images: $*" >&2; }
die() {
    say "$*"
    exit 1
}
# Exit code 2: this machine lacks a tool (callers may skip); 1: a build failed.
missing() {
    say "$*"
    exit 2
}

bin_dir=""
base_only=false
while [ $# -gt 0 ]; do
    case "$1" in
    --bin-dir)
        [ $# -ge 2 ] || die "--bin-dir needs a directory"
        bin_dir="$2"
        shift 2
        ;;
    --base-only)
        base_only=true
        shift
        ;;
    -h | --help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: ci/images.sh [--bin-dir DIR] [--base-only])" ;;
    esac
done

for tool in podman runc sha256sum flock; do
    command -v "$tool" >/dev/null || missing "$tool not installed (ci/setup.sh installs podman, runc and debootstrap)"
done

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# When each image was last handed to a caller: another run on this machine (other binaries,
# other tags) may be about to start the image it was just given, however old the image is.
used_dir=/var/tmp/bluechi-images.used
stamp_of() { echo "$used_dir/$(echo "$1" | tr '/:' '__')"; }
handed_out() {
    mkdir -p "$used_dir" && touch "$(stamp_of "$1")"
}
recently_handed_out() {
    [ -n "$(find "$(stamp_of "$1")" -mmin -60 2>/dev/null)" ]
}

# Removes all but the newest $2 images of repository $1, sparing any built or handed out in
# the last hour (see above). Images still used by a container (or by a child image) are
# refused by podman and stay.
prune() {
    local old old_enough
    old_enough=$(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$1" \
        --filter until=1h)
    podman images --sort created --format '{{.Repository}}:{{.Tag}}' --filter "reference=$1" |
        { grep -v ':latest$' || true; } | tail -n +"$(($2 + 1))" | while read -r old; do
        if grep -qxF "$old" <<<"$old_enough" && ! recently_handed_out "$old"; then
            podman rmi "$old" >/dev/null 2>&1 || true
            rm -f "$(stamp_of "$old")"
        fi
    done
}

# ---- binaries (before the lock: a release build must not hold up other callers)
binaries=(bluechi-controller bluechi-agent bluechi-proxy bluechictl bluechi-is-online systemd-emulator systemctl)
if ! $base_only && [ -z "$bin_dir" ]; then
    bin_dir="$CARGO_TARGET_DIR/release"
    # A no-op when the binaries are up to date; never an image from stale binaries.
    build=(cargo build --release -q)
    for b in "${binaries[@]}"; do build+=(--bin "$b"); done
    (cd "$root" && "${build[@]}") || die "cargo build --release failed"
fi
$base_only || for b in "${binaries[@]}"; do
    [ -x "$bin_dir/$b" ] || die "$b missing in $bin_dir (cargo build --bins, or omit --bin-dir)"
done

# Two callers on one machine would otherwise debootstrap the same base, or build the same node
# image, twice.
exec 9>/var/tmp/bluechi-images.lock
flock 9

# ---- base image: its recipe is these variables; their text is hashed into the tag.
base_repo=localhost/bluechi-node-base
base_suite=bookworm
base_debootstrap=(--variant=minbase --include=systemd,dbus,systemd-sysv,procps,iproute2)
base_changes=(--change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3')
base_recipe="$(printf '%s\n' recipe-v1 "$base_suite" "${base_debootstrap[@]}" "${base_changes[@]}")"
base_ref="$base_repo:$(sha256sum <<<"$base_recipe" | cut -c1-12)"

build_base() {
    command -v debootstrap >/dev/null || missing "debootstrap not installed (needed once to build $base_ref)"
    local dir log t0
    t0="$(now)"
    dir="$(mktemp -d /var/tmp/bluechi-base.XXXXXX)"
    log="$dir.log"
    if ! debootstrap "${base_debootstrap[@]}" "$base_suite" "$dir" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -rf "$dir"
        die "debootstrap failed (full log: $log)"
    fi
    if ! tar -C "$dir" -c . | podman import --quiet "${base_changes[@]}" - "$base_ref" >"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$dir"
        die "podman import of $base_ref failed"
    fi
    rm -rf "$dir" "$log"
    say "base $base_ref built in $(since "$t0")"
    prune "$base_repo" 2
}

if podman image exists "$base_ref"; then
    say "base $base_ref cached"
else
    build_base
fi
handed_out "$base_ref"
echo "base=$base_ref"
if $base_only; then
    exit 0
fi

# ---- node images: a build context staged from the repository, hashed with the Containerfile
# and the parent image's reference.
stage="$(mktemp -d /var/tmp/bluechi-images.XXXXXX)"
trap 'rm -rf "$stage"' EXIT

stage_context() {
    local ctx="$stage/$1"
    mkdir -p "$ctx/bin"
    case "$1" in
    podman-systemd)
        mkdir -p "$ctx"/{units,dbus,tmpfiles,etc/bluechi/controller.conf.d,etc/bluechi/agent.conf.d}
        for b in bluechi-controller bluechi-agent bluechi-proxy bluechictl bluechi-is-online; do
            install -m 0755 "$bin_dir/$b" "$ctx/bin/$b"
        done
        install -m 0644 "$root"/crates/bluechi-controller/units/* "$root"/crates/bluechi-agent/units/* "$ctx/units/"
        install -m 0644 "$root"/crates/*/dbus/*.conf "$ctx/dbus/"
        install -m 0644 "$root/crates/bluechi-controller/tmpfiles.d/bluechi.conf" "$ctx/tmpfiles/"
        ;;
    podman-emulator)
        install -m 0755 "$bin_dir/systemd-emulator" "$bin_dir/systemctl" "$ctx/bin/"
        install -m 0755 "$root/containers/systemd-emulator-init" "$ctx/bin/"
        ;;
    esac
}

# Hash of everything a build reads: file names, modes and contents, plus extra strings.
context_hash() {
    local ctx="$1"
    shift
    {
        printf '%s\n' "$@"
        (cd "$ctx" && find . -printf '%y %m %p\n' | LC_ALL=C sort)
        (cd "$ctx" && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2)
    } | sha256sum | cut -c1-12
}

# build_node NAME REPO PARENT_ARG PARENT_REF: prints the image reference.
build_node() {
    local name="$1" repo="$2" arg="$3" parent="$4" file ref t0 log
    file="$root/containers/Containerfile.node-${name#podman-}"
    stage_context "$name"
    cp "$file" "$stage/$name/Containerfile"
    ref="$repo:$(context_hash "$stage/$name" "$arg=$parent")"
    if podman image exists "$ref"; then
        say "$name $ref cached"
    else
        t0="$(now)"
        log="$stage/$name.log"
        if ! podman build --pull=never --network=none --build-arg "$arg=$parent" \
            -f "$stage/$name/Containerfile" -t "$ref" "$stage/$name" >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            die "podman build of $name failed"
        fi
        say "$name $ref built in $(since "$t0")"
        prune "$repo" 3
    fi
    # For people at a shell; callers use the hashed reference.
    podman tag "$ref" "$repo:latest"
    echo "$ref"
}

systemd_ref="$(build_node podman-systemd localhost/bluechi-node-systemd BASE "$base_ref")"
handed_out "$systemd_ref"
echo "podman-systemd=$systemd_ref"
emulator_ref="$(build_node podman-emulator localhost/bluechi-node-emulator NODE_SYSTEMD "$systemd_ref")"
handed_out "$emulator_ref"
echo "podman-emulator=$emulator_ref"
