"""devnet's port picker (devnet/layout.py kernel_ports) and $DEVNET_PORT_RANGE, which keeps
devnets run side by side (the suite's parallel workers) on disjoint ports."""

from __future__ import annotations

import socket

import pytest

from devnet.layout import PORT_RANGE_ENV, kernel_ports, picking_range


def test_ports_are_picked_free_and_distinct_within_the_range(monkeypatch):
    monkeypatch.setenv(PORT_RANGE_ENV, "23000-23500")
    ports = kernel_ports(20)
    assert len(set(ports)) == 20 and all(23000 <= p < 23500 for p in ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # still free: the picker released it


def test_without_the_variable_ports_stay_below_the_kernels_ephemeral_range(monkeypatch):
    monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    low, high = picking_range()
    ports = kernel_ports(5)
    assert len(set(ports)) == 5
    if high > low:  # the kernel's range is known (Linux): every pick lies below it
        assert all(low <= p < high for p in ports)


@pytest.mark.parametrize("text", ["20000", "a-b", "30000-20000", "20000-20000", "80-90", "60000-70000", "-", "20000-"])
def test_a_malformed_range_is_refused_saying_what_it_must_be(monkeypatch, text):
    monkeypatch.setenv(PORT_RANGE_ENV, text)
    with pytest.raises(ValueError, match=r"DEVNET_PORT_RANGE must be LOW-HIGH with 1024 <= LOW < HIGH <= 65536"):
        kernel_ports(1)
