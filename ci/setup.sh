#!/usr/bin/env bash
# Installs what the workbench needs on a fresh Debian machine, only where missing:
# dbus-daemon (private buses of the local backend) and just (the task runner).
set -euo pipefail

need_apt=()
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
if ((${#need_apt[@]})); then
    echo "ci/setup.sh: installing ${need_apt[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v just >/dev/null 2>&1; then
    echo "ci/setup.sh: installing just (cargo install)" >&2
    cargo install --locked --quiet just
fi
