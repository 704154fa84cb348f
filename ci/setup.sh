#!/usr/bin/env bash
# Installs what the workbench needs on a fresh Debian machine, only where missing:
# dbus-daemon (private buses of the local backend), just (the task runner), and Python
# with dasbus, PyGObject and the `bluechi` bindings (the Python client test).
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
