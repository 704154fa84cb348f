#!/usr/bin/env bash
# Installs what the workbench needs on a fresh Debian machine, only where missing:
# dbus-daemon (private buses of the local backend), just (the task runner), Python with dasbus,
# PyGObject and the `bluechi` bindings (the Python client test), and, as root, podman, runc and
# debootstrap with the systemd 252 image that the container tests and `just conformance` use.
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

# The Python client test (tests/tests/python_client.rs) drives upstream's `bluechi` bindings
# from PyPI on Debian's dasbus and PyGObject, with the system interpreter.
py_apt=()
/usr/bin/python3 -c 'import dasbus' >/dev/null 2>&1 || py_apt+=(python3-dasbus)
/usr/bin/python3 -c 'import gi' >/dev/null 2>&1 || py_apt+=(python3-gi)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || py_apt+=(python3-pip)
if ((${#py_apt[@]})); then
    echo "ci/setup.sh: installing ${py_apt[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${py_apt[@]}" >/dev/null
fi
if ! /usr/bin/python3 -c 'import bluechi.api' >/dev/null 2>&1; then
    echo "ci/setup.sh: installing the bluechi Python bindings (pip)" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo /usr/bin/python3 -m pip install --quiet --break-system-packages 'bluechi>=1,<2'
fi

# Container tests (tests/tests/real_systemd.rs, emulator_pid1.rs) run real systemd 252 and the
# emulator as PID 1 in Podman. No registry is reachable, so the image is built offline with
# debootstrap, once; without root this is skipped and those tests say why they did not run.
if [ "$(id -u)" -eq 0 ]; then
    ct_apt=()
    command -v podman >/dev/null 2>&1 || ct_apt+=(podman)
    command -v runc >/dev/null 2>&1 || ct_apt+=(runc)
    command -v debootstrap >/dev/null 2>&1 || ct_apt+=(debootstrap)
    if ((${#ct_apt[@]})); then
        echo "ci/setup.sh: installing ${ct_apt[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${ct_apt[@]}" >/dev/null
    fi
    # A failed image build must not hide the rest of the suite: the container tests then skip,
    # printing why.
    "$(dirname "$0")/conformance.sh" --image-only ||
        echo "ci/setup.sh: WARNING: the systemd 252 image could not be built; container tests will skip" >&2
fi
