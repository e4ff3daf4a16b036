"""A tiny synchronous harness around real replicas, for the handler unit tests."""

from __future__ import annotations

from collections import deque
from typing import Any

from chainnode.crypto import get_suite
from chainnode.protocol.types import BlockHeader, sealer_set_hash
from consensus import events as ev
from consensus.messages import decode_message, sign
from consensus.replica import Replica, ReplicaConfig

SUITE = get_suite("ed25519")
N = 4
KEYS = [SUITE.keypair_from_private(bytes([i + 1]) * 32) for i in range(N)]
PUBS = [pub for _, pub in KEYS]
SET_HASH = sealer_set_hash(SUITE, PUBS)
GENESIS = SUITE.hash(b"genesis")
TX = [SUITE.hash(b"tx%d" % i) for i in range(8)]
CFG = ReplicaConfig(timeout_base_ms=1000, timeout_max_ms=8000)


def make_replica(index: int = 0, *, suite: Any = SUITE, persisted: bytes | None = None, head: tuple[int, bytes] = (0, GENESIS), pubs: list[bytes] = PUBS, config: ReplicaConfig = CFG, weights: list[int] | None = None) -> Replica:
    priv, pub = KEYS[index]
    if weights is None:
        return Replica(config, suite, priv, pub, pubs, head[0], head[1], persisted)  # the unweighted call, as before
    return Replica(config, suite, priv, pub, pubs, head[0], head[1], persisted, weights=weights)


def signed(msg: Any, by: int | None = None) -> Any:
    by = msg.sender if by is None else by
    return sign(msg, lambda data: SUITE.sign(KEYS[by][0], data))


def make_header(height: int = 1, proposer: int = 1, parent: bytes = GENESIS, txs: list[bytes] | None = None, *, extra: bytes = b"", set_hash: bytes = SET_HASH, state: bytes = b"s") -> tuple[BlockHeader, list[bytes]]:
    txs = TX[:2] if txs is None else txs
    header = BlockHeader(
        parent_hash=parent,
        height=height,
        timestamp_ms=1000 + height,
        proposer_index=proposer,
        sealer_set_hash=set_hash,
        tx_root=SUITE.hash(b"".join(txs)),
        receipt_root=SUITE.hash(b"r" + state),
        state_root=SUITE.hash(state + b"".join(txs)),
        gas_used=0,
        tx_count=len(txs),
        extra=extra,
    )
    return header, txs


def key_of(index: int) -> bytes:
    """The consensus key of sealer `index`; from N on, keys of nodes that are no sealer."""
    return PUBS[index] if index < N else SUITE.keypair_from_private(bytes([0x80 + index]) * 32)[1]


def deliver(replica: Replica, msg: Any, sender: int | None = None) -> list:
    """`msg` from the peer the transport authenticated as `key_of(sender)` (default: the
    sender the message claims)."""
    data = msg if isinstance(msg, bytes) else msg.encode()
    return replica.handle(ev.MessageReceived(key_of(msg.sender if sender is None else sender), data))


def sent(actions: list) -> list:
    """Decoded messages of the Send/Broadcast actions, in order."""
    return [decode_message(a.data) for a in actions if type(a) in (ev.Send, ev.Broadcast)]


def of_type(actions: list, cls: type) -> list:
    return [a for a in actions if type(a) is cls]


def misbehaviour(actions: list) -> list[str]:
    return [a.reason for a in actions if type(a) is ev.Misbehaviour]


class Cluster:
    """n honest replicas, synchronous lossless delivery, an application that executes every
    proposal to itself (so roots always match) and builds blocks from a shared pool."""

    def __init__(self, n: int = N, weights: list[int] | None = None) -> None:
        assert n == N
        self.replicas = [make_replica(i, weights=weights) for i in range(n)]
        self.queue: deque = deque()
        self.commits: list[list[ev.Commit]] = [[] for _ in range(n)]
        self.timers: list[dict] = [{} for _ in range(n)]
        self.persisted: list[bytes | None] = [None] * n
        self.pool: list[bytes] = []
        self.down: set[int] = set()
        self.log: list[tuple[int, Any]] = []
        self.drop = lambda src, dst, data: False  # a test's network filter

    def feed(self, index: int, event: Any) -> None:
        self.queue.append((index, event))
        self.run()

    def run(self, limit: int = 100_000) -> None:
        while self.queue and limit:
            limit -= 1
            index, event = self.queue.popleft()
            if index in self.down:
                continue
            self.perform(index, self.replicas[index].handle(event))

    def perform(self, index: int, actions: list) -> None:
        for a in actions:
            self.log.append((index, a))
            t = type(a)
            if t is ev.Broadcast:
                for j in range(N):
                    if j != index and not self.drop(index, j, a.data):
                        self.queue.append((j, ev.MessageReceived(PUBS[index], a.data)))
            elif t is ev.Send:
                to = PUBS.index(a.to_pub)
                if not self.drop(index, to, a.data):
                    self.queue.append((to, ev.MessageReceived(PUBS[index], a.data)))
            elif t is ev.SetTimer:
                self.timers[index][a.timer_id] = a.delay_ms
            elif t is ev.CancelTimer:
                self.timers[index].pop(a.timer_id, None)
            elif t is ev.Persist:
                self.persisted[index] = a.data
            elif t is ev.BuildProposal:
                txs = list(self.pool)
                if not txs and not a.allow_empty:
                    self.queue.append((index, ev.ProposalReady(a.height, a.view, None, [])))
                    continue
                header, _ = make_header(a.height, a.proposer_index, a.parent_hash, txs, set_hash=a.sealer_set_hash)
                self.queue.append((index, ev.ProposalReady(a.height, a.view, header, txs)))
            elif t is ev.Execute:
                self.queue.append((index, ev.ExecutionDone(a.proposal_id, a.header)))
            elif t is ev.Commit:
                self.commits[index].append(a)
                for tx in a.tx_hashes:
                    if tx in self.pool:
                        self.pool.remove(tx)

    def fire_timer(self, index: int) -> None:
        (timer_id,) = list(self.timers[index])
        del self.timers[index][timer_id]
        self.feed(index, ev.TimerFired(timer_id))

    def submit(self, txs: list[bytes]) -> None:
        self.pool.extend(txs)
        for i in range(N):
            self.queue.append((i, ev.PoolNotEmpty()))
        self.run()
