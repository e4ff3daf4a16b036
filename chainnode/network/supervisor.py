"""The reconnect supervisor: keeps a connection to every admitted peer we are meant to dial.

Dial rule: of two peers, the one with the lower peer id (compared as raw bytes) dials and
runs the handshake; the other only accepts. Both sides know the rule, so two nodes never
race to open duplicate connections, and `max_connections_per_peer=1` never has to choose.

Backoff: after an attempt, the next one to that peer waits `reconnect_initial_ms`, doubling
to `reconnect_max_ms`, with a deterministic +-20% jitter (derived from the peer id and the
attempt number, so runs are reproducible but peers do not retry in lockstep). It resets when
a session with the peer is established. Each attempt first clears libp2p's 60-second
negative dial cache for the peer (research trap 4): without that, one failed dial to a
restarting peer would block it for a minute. A connect that returns a stale connection
(the ~100-150 ms after a peer dies) fails the handshake; the session drops the connection
and the next attempt dials afresh.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Awaitable, Callable

import trio

from chainnode.network.errors import TRANSPORT_ERRORS, NetworkError
from chainnode.network.peers import PeerInfo

log = logging.getLogger("chainnode.network")


class Backoff:
    def __init__(self, initial_ms: int, max_ms: int, salt: bytes) -> None:
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.salt = salt
        self.delay_ms = initial_ms
        self.attempts = 0
        self.next_attempt_ms = 0.0

    def attempted(self, now_ms: float) -> float:
        """Record an attempt at `now_ms`; return the delay before the next one may start."""
        self.attempts += 1
        digest = hashlib.sha256(self.salt + self.attempts.to_bytes(8, "big")).digest()
        jitter = 0.8 + 0.4 * (int.from_bytes(digest[:2], "big") / 65535)
        delay = min(self.max_ms, self.delay_ms) * jitter
        self.next_attempt_ms = now_ms + delay
        self.delay_ms = min(self.max_ms, self.delay_ms * 2)
        return delay

    def reset(self) -> None:
        self.delay_ms = self.initial_ms
        self.attempts = 0
        self.next_attempt_ms = 0.0


class ReconnectSupervisor:
    def __init__(
        self,
        *,
        targets: Callable[[], list[PeerInfo]],
        dial: Callable[[PeerInfo], Awaitable[None]],
        not_before_ms: Callable[[PeerInfo], float],
        initial_ms: int,
        max_ms: int,
        tick_ms: int,
        now_ms: Callable[[], float],
    ) -> None:
        """`targets()` lists the peers to dial now (admitted, ours to dial, not connected);
        `dial(peer)` connects or raises NetworkError, trio.TooSlowError or one of the
        TRANSPORT_ERRORS (anything else is a bug and propagates); `not_before_ms(peer)` is
        when a ban ends."""
        self._targets = targets
        self._dial = dial
        self._not_before_ms = not_before_ms
        self._initial_ms = initial_ms
        self._max_ms = max_ms
        self._tick_s = tick_ms / 1000
        self._now_ms = now_ms
        self._backoffs: dict[str, Backoff] = {}
        self._inflight: set[str] = set()
        self._wake = trio.Event()

    def wake(self) -> None:
        """Look for work now (a peer disconnected, membership changed)."""
        self._wake.set()

    def established(self, peer_id: str) -> None:
        b = self._backoffs.get(peer_id)
        if b is not None:
            b.reset()

    def forget(self, keep: set[str]) -> None:
        for pid in list(self._backoffs):
            if pid not in keep:
                del self._backoffs[pid]

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                now = self._now_ms()
                for info in self._targets():
                    pid = info.peer_id
                    if pid in self._inflight:
                        continue
                    b = self._backoffs.get(pid)
                    if b is None:
                        b = self._backoffs[pid] = Backoff(self._initial_ms, self._max_ms, pid.encode())
                    if now < b.next_attempt_ms or now < self._not_before_ms(info):
                        continue
                    b.attempted(now)
                    self._inflight.add(pid)
                    nursery.start_soon(self._attempt, info, b)
                with trio.move_on_after(self._tick_s):
                    await self._wake.wait()

    async def _attempt(self, info: PeerInfo, b: Backoff) -> None:
        try:
            await self._dial(info)
        except (NetworkError, trio.TooSlowError, *TRANSPORT_ERRORS) as exc:  # unreachable, refused, timed out: retry after backoff
            level = logging.INFO if b.attempts in (1, 8) else logging.DEBUG
            log.log(level, "dial peer %d failed (attempt %d, next in %.0f ms): %s", info.index, b.attempts,
                    max(0.0, b.next_attempt_ms - self._now_ms()), _short(exc))
        finally:
            self._inflight.discard(info.peer_id)
            # Look again at once: the peer may still need dialing when its backoff ends,
            # and the loop's timer is computed from the tick, not per peer.
            self._wake.set()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}"
