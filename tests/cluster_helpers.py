"""Helpers for tests (and benchmarks) that start a local multi-worker cluster."""


def free_loopback_ports(n):
    """``n`` distinct free TCP ports on 127.0.0.1, for a local test cluster's TF_CONFIG."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
