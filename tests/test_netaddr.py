"""free_port: the ports tests and benchmarks start their servers on."""

from __future__ import annotations

import socket

from clauditor.netaddr import _ephemeral_range, free_port


def test_free_ports_stay_out_of_the_ephemeral_range_and_never_repeat() -> None:
    """An outgoing connection takes its local port from the ephemeral range at any moment;
    a port picked there can be gone by the time the server binds it (CI saw a core exit
    with "address already in use")."""
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(not low <= p <= high for p in ports)
    with socket.socket() as sock:  # and what it hands out is bindable
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_someone_listens_on_is_never_handed_out() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        assert taken not in {free_port() for _ in range(100)}
