"""devstack hands its services ports outside the kernel's ephemeral range, each once: a port from that
range can be taken as an outgoing connection's source port before the service binds it."""

from __future__ import annotations

from devstack import stack


def test_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    low = stack._ephemeral_low()
    ports = [stack.free_port() for _ in range(50)]
    assert all(1024 <= port < low for port in ports)
    assert len(set(ports)) == len(ports)
