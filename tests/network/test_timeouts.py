"""Request timeouts follow how long a peer's answers take (RFC 6298's timer)."""

import pytest

from chainnode.network import NetworkLimits
from chainnode.network.timeouts import RequestTimeouts


def test_timeouts_follow_answers_back_off_and_stay_in_bounds():
    t = RequestTimeouts(initial_ms=5000, min_ms=2000, max_ms=30000)
    key = (1, "/chainnode/sync/1")
    assert t.timeout_ms(key) == 5000  # nothing known yet
    for _ in range(20):
        t.answered(key, 100)
    assert t.timeout_ms(key) == 2000  # a fast, steady peer: the floor
    for _ in range(20):
        t.answered(key, 4000)  # a loaded peer: answers take 4 s, and the timeout grows past them
    grown = t.timeout_ms(key)
    assert 4000 < grown <= 30000
    t.timed_out(key)
    assert t.timeout_ms(key) == 2 * grown  # doubled after each timeout ...
    for _ in range(4):
        t.timed_out(key)
    assert t.timeout_ms(key) == 30000  # ... up to the ceiling
    t.answered(key, 4000)
    assert 4000 < t.timeout_ms(key) < 30000  # an answer ends the back-off
    assert t.timeout_ms((2, "/chainnode/sync/1")) == 5000  # per peer
    with pytest.raises(ValueError):
        RequestTimeouts(initial_ms=500, min_ms=2000, max_ms=30000)
    with pytest.raises(ValueError, match="request_timeout_min_ms"):
        NetworkLimits(request_timeout_min_ms=6000)
