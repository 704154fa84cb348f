#!/usr/bin/python3
"""Drives our controller with upstream's Python bindings (`bluechi` from PyPI, on dasbus).

Usage: bluechi_client.py NODE UNIT [EXPECTED_NODE...]
Talks to the bus in DBUS_SYSTEM_BUS_ADDRESS. Prints one line per check:
  OK <check> [detail]       the check passed
  FAIL <check>: <reason>    the check failed (exit status 1)
"""

import sys
import time

from dasbus.error import DBusError
from gi.repository import GLib

from bluechi.api import Controller, Monitor, Node

TIMEOUT_MS = 15000
failures = []


def ok(check, detail=""):
    print(f"OK {check} {detail}".rstrip(), flush=True)


def fail(check, reason):
    failures.append(check)
    print(f"FAIL {check}: {reason}", flush=True)


def run_until(done, timeout_ms=TIMEOUT_MS):
    """Runs the GLib loop until done() is true or the deadline passes; returns done()."""
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout_ms / 1000
    while not done() and time.monotonic() < deadline:
        ctx.iteration(False) or time.sleep(0.005)
    return done()


def check_nodes(controller, expected):
    nodes = controller.list_nodes()
    names = [n[0] for n in nodes]
    missing = [e for e in expected if e not in names]
    offline = [n[0] for n in nodes if n[2] != "online"]
    if missing or offline:
        fail("list-nodes", f"missing {missing}, offline {offline}, got {nodes}")
    else:
        ok("list-nodes", " ".join(names))


def check_properties(node_name):
    node = Node(node_name)
    status, ip, seen = node.status, node.peer_ip, node.last_seen_timestamp
    now_us = int(time.time() * 1_000_000)
    if status != "online":
        fail("node-properties", f"Status is {status!r}")
    elif not ip.endswith("127.0.0.1"):
        fail("node-properties", f"PeerIp is {ip!r}, not the loopback agent's address")
    elif not 0 < seen <= now_us:
        fail("node-properties", f"LastSeenTimestamp {seen} not in (0, {now_us}]")
    else:
        ok("node-properties", f"Status={status} PeerIp={ip} LastSeenTimestamp>0")
    return node


def start_monitor(controller, node_name, unit, events):
    """Subscribes to the unit's state changes; None (and a failure) if that fails."""
    try:
        path = controller.create_monitor()
        monitor = Monitor(path)
        monitor.on_unit_state_changed(
            lambda n, u, active, sub, reason: events.append((n, u, active, sub, reason))
        )
        monitor.subscribe(node_name, unit)
        return monitor
    except DBusError as e:
        fail("monitor", f"setting up the monitor failed: {e}")
        return None


def run_job(controller, node, verb, unit, removed):
    method = node.start_unit if verb == "start" else node.stop_unit
    job = method(unit, "replace")
    if not run_until(lambda: any(r[1] == job for r in removed)):
        fail(f"{verb}-job", f"no JobRemoved for {job} within {TIMEOUT_MS} ms")
        return
    result = next(r[4] for r in removed if r[1] == job)
    if result == "done":
        ok(f"{verb}-job", f"{job} {result}")
    else:
        fail(f"{verb}-job", f"{job} ended with {result!r}")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    node_name, unit, expected = sys.argv[1], sys.argv[2], sys.argv[3:]
    controller = Controller()
    check_nodes(controller, expected or [node_name])
    node = check_properties(node_name)

    events = []
    monitor = start_monitor(controller, node_name, unit, events)

    removed = []
    controller.on_job_removed(lambda *args: removed.append(args))
    run_job(controller, node, "start", unit, removed)
    run_job(controller, node, "stop", unit, removed)

    if monitor is not None:
        def seen(state):
            return any(e[1] == unit and e[2] == state and e[4] == "real" for e in events)

        if run_until(lambda: seen("active") and seen("inactive")):
            ok("monitor", " ".join(f"{e[2]}/{e[3]}({e[4]})" for e in events))
        else:
            fail("monitor", f"expected real active and inactive states, got {events}")
        monitor.close()

    print("PASS" if not failures else f"FAILED: {' '.join(failures)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
