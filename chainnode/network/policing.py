"""Per-peer rate limits and the penalty box for misbehaving peers (sans-IO: times in ms
are passed in, so the logic is testable without a clock)."""

from __future__ import annotations

from dataclasses import dataclass


class TokenBucket:
    """`rate_per_s` tokens per second, at most `burst` saved up."""

    def __init__(self, rate_per_s: int, burst: int, now_ms: float) -> None:
        self.rate_per_ms = rate_per_s / 1000.0
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last_ms = now_ms

    def take(self, now_ms: float, n: int = 1) -> bool:
        elapsed = now_ms - self.last_ms
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_ms)
            self.last_ms = now_ms
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


@dataclass
class _Record:
    strikes: int = 0
    banned_until_ms: float = 0.0
    last_strike_ms: float = 0.0


class PenaltyBox:
    """Bans a misbehaving peer for a while, longer on each strike, so a hostile peer cannot
    make us spin reconnecting and re-verifying it. Strikes are forgotten after a quiet
    period so an honest peer that once sent a bad frame (a bug, a restart) recovers."""

    PEERS_MAX = 4096

    def __init__(self, base_ms: int, max_ms: int, forget_ms: int) -> None:
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.forget_ms = forget_ms
        self._records: dict[str, _Record] = {}

    def strike(self, peer_id: str, now_ms: float) -> float:
        """Record one misbehaviour; return the ban length in ms."""
        rec = self._records.get(peer_id)
        if rec is None:
            if len(self._records) >= self.PEERS_MAX:
                self._evict(now_ms)
            rec = self._records[peer_id] = _Record()
        if now_ms - rec.last_strike_ms > self.forget_ms:
            rec.strikes = 0
        rec.strikes += 1
        rec.last_strike_ms = now_ms
        ban_ms = min(self.max_ms, self.base_ms * 2 ** min(rec.strikes - 1, 30))
        rec.banned_until_ms = now_ms + ban_ms
        return ban_ms

    def forgive(self, peer_id: str) -> None:
        """Lift a ban and forget the strikes (a peer refused as unknown, now admitted)."""
        self._records.pop(peer_id, None)

    def banned(self, peer_id: str, now_ms: float) -> bool:
        rec = self._records.get(peer_id)
        return rec is not None and now_ms < rec.banned_until_ms

    def banned_until_ms(self, peer_id: str) -> float:
        rec = self._records.get(peer_id)
        return rec.banned_until_ms if rec else 0.0

    def _evict(self, now_ms: float) -> None:
        stale = [p for p, r in self._records.items() if now_ms - r.last_strike_ms > self.forget_ms]
        for p in stale:
            del self._records[p]
        if len(self._records) >= self.PEERS_MAX:
            oldest = min(self._records, key=lambda p: self._records[p].last_strike_ms)
            del self._records[oldest]
