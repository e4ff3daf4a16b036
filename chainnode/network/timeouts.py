"""Request timeouts that follow how long answers really take.

A fixed 5 s timeout failed both ways under faults: on a CPU-loaded machine honest peers
answered sync and transaction-fetch requests in more than 5 s, so every retry timed out
again (a 162 s stall), while a SIGSTOPped peer cost 5 s per request before the next peer was
tried. So each (peer, protocol) gets TCP's retransmission timer (RFC 6298): a smoothed
answer time plus four times its variation, kept between a floor and a ceiling, and doubled
after each timeout until an answer comes.
"""

from __future__ import annotations

from typing import Hashable

KEYS_MAX = 4096  # (peer, protocol) pairs remembered; a consortium has far fewer


class RequestTimeouts:
    def __init__(self, *, initial_ms: float, min_ms: float, max_ms: float) -> None:
        if not 0 < min_ms <= initial_ms <= max_ms:
            raise ValueError(f"request timeouts need 0 < min ({min_ms}) <= initial ({initial_ms}) <= max ({max_ms}) ms")
        self.initial_ms, self.min_ms, self.max_ms = initial_ms, min_ms, max_ms
        self._rtt: dict[Hashable, tuple[float, float]] = {}  # key -> (smoothed, variation), ms
        self._backoff: dict[Hashable, float] = {}  # key -> timeout after timeouts, ms

    def timeout_ms(self, key: Hashable) -> float:
        backed_off = self._backoff.get(key)
        if backed_off is not None:
            return backed_off
        rtt = self._rtt.get(key)
        if rtt is None:
            return self.initial_ms
        return min(self.max_ms, max(self.min_ms, rtt[0] + 4 * rtt[1]))

    def answered(self, key: Hashable, elapsed_ms: float) -> None:
        self._backoff.pop(key, None)
        rtt = self._rtt.get(key)
        if rtt is None:
            if len(self._rtt) >= KEYS_MAX:
                self._rtt.clear()
            self._rtt[key] = (elapsed_ms, elapsed_ms / 2)
        else:
            smoothed, variation = rtt
            variation += (abs(smoothed - elapsed_ms) - variation) / 4
            smoothed += (elapsed_ms - smoothed) / 8
            self._rtt[key] = (smoothed, variation)

    def timed_out(self, key: Hashable) -> None:
        if len(self._backoff) >= KEYS_MAX:
            self._backoff.clear()
        self._backoff[key] = min(self.max_ms, 2 * self.timeout_ms(key))
