#!/bin/bash
# Records what real systemctl 252 prints for each line of tests/*.session into tests/golden/,
# each session on a fresh systemd 252 container with tests/units/ installed.
#   emulator/systemctl/record.sh            re-record the golden files
#   emulator/systemctl/record.sh --compare  run OUR systemctl in the same container instead and
#                                           diff with the golden files (times and PIDs masked)
# Needs root, podman and the image built by ci/conformance.sh. CONTAINER names the container.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/containers/containers.conf}
image=localhost/bluechi-conformance-systemd252
name=${CONTAINER:-systemctl-golden}
target=${CARGO_TARGET_DIR:-$root/target}
mode=record
[ "${1:-}" = --compare ] && mode=compare

bin=systemctl
out=$here/tests/golden
if [ $mode = compare ]; then
    (cd "$root" && cargo build -q -p emulator-systemctl)
    bin=/opt/ctl/systemctl
    out=$(mktemp -d)
fi

run_session() {
    local session=$1 file=$2
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman run -d --name "$name" --systemd=always --network=none \
        -v "$target/debug:/opt/ctl:ro" "$image" /lib/systemd/systemd >/dev/null
    for _ in $(seq 100); do
        state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
        case $state in running|degraded) break ;; esac
        sleep 0.1
    done
    for u in "$here"/tests/units/*; do
        podman cp "$u" "$name:/etc/systemd/system/$(basename "$u")"
    done
    podman exec "$name" systemctl daemon-reload
    : >"$file"
    while IFS= read -r line; do
        case $line in ''|'#'*) continue ;; esac
        read -ra args <<<"$line"
        set +e
        timeout 60 podman exec "$name" "$bin" "${args[@]}" >/tmp/ctl.out.$$ 2>/tmp/ctl.err.$$
        rc=$?
        set -e
        { echo "\$ systemctl $line"; cat /tmp/ctl.out.$$
          if [ -s /tmp/ctl.err.$$ ]; then echo "[stderr]"; cat /tmp/ctl.err.$$; fi
          echo "[exit $rc]"; } >>"$file"
    done <"$session"
    rm -f /tmp/ctl.out.$$ /tmp/ctl.err.$$
    podman rm -f "$name" >/dev/null
}

mask() { sed -E 's/since [A-Z][a-z]{2} [0-9-]{10} [0-9:]{8} [A-Z]+; .* ago/since TIME/; s/[0-9]+ (\(|ExecStart)/PID \1/g; s/PID: [0-9]+/PID: PID/; s/libpod-[0-9a-f]+/libpod-ID/; s/─[0-9]+ /─PID /' "$1"; }

status=0
for session in "$here"/tests/*.session; do
    base=$(basename "$session" .session)
    run_session "$session" "$out/$base.golden"
    if [ $mode = compare ]; then
        diff -u <(mask "$here/tests/golden/$base.golden") <(mask "$out/$base.golden") || status=1
    fi
done
exit $status
