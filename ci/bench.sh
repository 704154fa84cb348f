#!/usr/bin/env bash
# Benchmarks of the local backend, printed, never asserted (release build): wall time of each
# seed scenario with the peak RSS of the controller and of an agent during it, then
# `bluechi-bench` (job latency against the emulator alone, idle RSS, the controller with 100
# nodes, fleet ListUnits, `bluechictl status` latency while a client floods the controller and
# never reads, the failure rate of back-to-back proxied start/stop cycles, oneshot jobs/s and
# unit-file load time/memory of the emulator against systemd 252 in Podman when podman and its
# image are there). Arguments go to bluechi-bench (e.g. `--jobs 500`, `--only flood,churn`,
# `--churn-cycles 300`, `--no-podman`, `--bin-dir OLD/target/release` to measure other builds),
# and per backend (local, podman-emulator, podman-systemd) the time to a 3-node cluster with
# every node online and each scenario's wall time (`--only backends`).
set -euo pipefail
cd "$(dirname "$0")/.."
# runc and lower ulimits for the systemd container, as the conformance recorder uses.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/containers/containers.conf}"
cargo build --release --workspace --bins --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
export BLUECHI_BIN_DIR="$bin"

# Peak VmRSS (kB) of processes whose executable is $1, sampled until the flag file goes away.
sample_rss() {
    local exe=$1 flag=$2 peak=0 pid rss
    while [ -e "$flag" ]; do
        for pid in $(pgrep -f "^$exe( |$)" || true); do
            rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
            [ "${rss:-0}" -gt "$peak" ] && peak=$rss
        done
        sleep 0.05
    done
    echo "$peak"
}

printf '%-34s %10s %16s %16s\n' scenario wall_s controller_rss_kB agent_rss_kB
for s in scenarios/*.scenario; do
    name=$(basename "$s" .scenario)
    flag=$(mktemp)
    sample_rss "$bin/bluechi-controller" "$flag" > "$flag.c" &
    sample_rss "$bin/bluechi-agent" "$flag" > "$flag.a" &
    start=$(date +%s.%N)
    "$bin/scenario" "$name" > "$flag.log" 2>&1 || { cat "$flag.log"; rm -f "$flag"; exit 1; }
    end=$(date +%s.%N)
    rm -f "$flag"
    wait
    printf '%-34s %10.2f %16s %16s\n' "$name" "$(awk "BEGIN {print $end - $start}")" "$(cat "$flag.c")" "$(cat "$flag.a")"
    rm -f "$flag.c" "$flag.a" "$flag.log"
done
echo "(upholds-restarts-target waits ~5 s for /bin/sleep 5 to exit: that is the unit's own time)"
echo
"$bin/bluechi-bench" --bin-dir "$bin" "$@"
