"""A bus-style client on the controller's peer-to-peer endpoint, as upstream's
`bluechi-internal-hello` test does: dasbus connects to the TCP address as to a message bus
(GLib authenticates with `AUTH EXTERNAL <uid>` and calls Hello itself), then builds a proxy for
/org/freedesktop/DBus from introspection and calls Hello through it.

Usage: peer_hello.py ADDRESS. Prints `OK hello <name>` and exits 0, or says what failed.
"""

import sys

from dasbus.connection import AddressedMessageBus


def main():
    bus = AddressedMessageBus(sys.argv[1])
    proxy = bus.get_proxy("org.eclipse.bluechi", "/org/freedesktop/DBus")
    try:
        name = proxy.Hello()
    except AttributeError as e:
        # dasbus found no Hello in the introspection data.
        print(f"FAIL hello not introspectable: {e}")
        return 1
    print(f"OK hello {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
