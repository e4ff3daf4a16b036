"""The glue between the node and the PBFT core (chainnode.pbft.driver.PbftGlue), around a
real replica, with a recording transport and application: where messages go, what the
application is asked and in which order, and what the core hears after a block."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chainnode.pbft.driver import ChainFacts, PbftGlue
from chainnode.protocol.types import BlockHeader, commit_signing_bytes
from consensus import events as ev
from consensus.messages import Checkpoint, Commit, Prepare, PrePrepare, decode_message
from tests.consensus.helpers import CFG, KEYS, PUBS, SUITE, make_header, make_replica, signed

LEADER = 1  # of height 1, view 0
JOINER = SUITE.keypair_from_private(b"\x42" * 32)[1]
QUIET = ChainFacts((), CFG.timeout_base_ms, CFG.block_tx_count_max)  # nothing pending, config as the core has it


@dataclass(frozen=True)
class Built:
    header: BlockHeader


class World:
    """The glue's Transport and App at once, logging every call in order."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.head = 0
        self.pool_work = False
        self.answer_commits_with: ChainFacts | None = None
        self.glue: PbftGlue | None = None

    def send(self, pub: bytes, data: bytes) -> None:
        self.log.append(("send", pub, decode_message(data)))

    def report(self, pub: bytes, reason: str) -> None:
        self.log.append(("report", pub, reason))

    def head_height(self) -> int:
        return self.head

    def has_pool_work(self) -> bool:
        return self.pool_work

    def set_timer(self, timer_id, delay_ms: int) -> None:
        self.log.append(("timer", timer_id, delay_ms))

    def cancel_timer(self, timer_id) -> None:
        self.log.append(("cancel", timer_id))

    def build(self, action: ev.BuildProposal) -> None:
        self.log.append(("build", action))

    def execute(self, action: ev.Execute, fetch_from: list[bytes]) -> None:
        self.log.append(("execute", action, fetch_from))

    def persist(self, data: bytes) -> None:
        self.log.append(("persist",))

    def commit(self, proposal, certificate, tx_hashes: list[bytes]) -> None:
        self.log.append(("commit", proposal, certificate))
        if self.answer_commits_with is not None:  # an application that commits at once
            self.head = proposal.header.height
            self.glue.committed(proposal.header.height, self.answer_commits_with)

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.log]

    def sent_to(self, message_type: type) -> list[bytes]:
        return [entry[1] for entry in self.log if entry[0] == "send" and type(entry[2]) is message_type]

    def last(self, kind: str) -> tuple:
        return next(entry for entry in reversed(self.log) if entry[0] == kind)


def make_glue(index: int = 0, facts: ChainFacts = QUIET) -> tuple[PbftGlue, World, list]:
    """The glue of sealer `index` at height 1; `fed` records every event the core gets."""
    replica = make_replica(index)
    fed: list = []
    handle = replica.handle
    replica.handle = lambda event: (fed.append(event), handle(event))[1]
    world = World()
    glue = world.glue = PbftGlue(replica, world, world)
    glue.start(facts)
    return glue, world, fed


def propose_and_execute(glue: PbftGlue, world: World, elapsed_ms: float = 0.0, txs: list[bytes] | None = None):
    header, txs = make_header(txs=txs)
    glue.on_message(PUBS[LEADER], signed(PrePrepare(1, 0, LEADER, header, txs)).encode())
    _, action, fetch_from = world.last("execute")
    glue.executed(action, Built(header), elapsed_ms=elapsed_ms)
    return header, fetch_from


def certify(glue: PbftGlue, header: BlockHeader) -> None:
    """PREPAREs, COMMITs and CHECKPOINTs of sealers 2 and 3: with ours, a quorum of each."""
    pid = header.hash(SUITE)
    for i in (2, 3):
        glue.on_message(PUBS[i], signed(Prepare(1, 0, i, pid)).encode())
    for i in (2, 3):
        glue.on_message(PUBS[i], signed(Commit(1, 0, i, pid)).encode())
    for i in (2, 3):
        glue.on_message(PUBS[i], Checkpoint(1, 0, i, pid, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))).encode())


def test_votes_go_to_the_sealers_of_this_height_and_the_next_after_they_are_persisted():
    # A change made in the genesis block: JOINER certifies blocks from height 2 on.
    joining = ChainFacts(((2, tuple(PUBS) + (JOINER,), (1,) * 5),), CFG.timeout_base_ms, CFG.block_tx_count_max)
    glue, world, _ = make_glue(facts=joining)
    _, fetch_from = propose_and_execute(glue, world)
    assert fetch_from == [PUBS[LEADER], PUBS[2], PUBS[3]]  # its transactions: the proposer first, never us
    assert world.sent_to(Prepare) == [PUBS[1], PUBS[2], PUBS[3], JOINER]
    kinds = world.kinds()
    assert kinds.index("persist") < kinds.index("send")  # our vote is on disk before it leaves


def test_a_message_names_its_sender_by_key_and_a_liar_is_reported_by_key():
    glue, world, _ = make_glue()
    header, txs = make_header()
    glue.on_message(PUBS[3], signed(PrePrepare(1, 0, LEADER, header, txs)).encode())  # 3 relays 1's proposal
    assert ("report", PUBS[3], "message claims sender 1") in world.log and "execute" not in world.kinds()


def test_after_a_block_the_core_hears_what_it_decided_before_anything_else():
    glue, world, fed = make_glue()
    world.pool_work = True
    world.answer_commits_with = ChainFacts(((3, tuple(PUBS[:3]), (1, 1, 1)),), 2500, 7)
    header, _ = propose_and_execute(glue, world)
    certify(glue, header)
    (_, proposal, certificate) = world.last("commit")
    assert proposal.header == header and certificate.height == 1
    # The commit answered at once, inside the Commit's own actions: what the block decided
    # still reaches the core right after the CHECKPOINT that certified it, in this order.
    kinds = [type(e) for e in fed]
    at = kinds.index(ev.SealersChanged)
    assert kinds[at - 1 :] == [ev.MessageReceived, ev.SealersChanged, ev.ConfigChanged, ev.PoolNotEmpty]
    replica = glue.replica
    assert replica.sealers_at(3).pubs == tuple(PUBS[:3]) and replica.cfg.timeout_base_ms == 2500
    # The same facts again (a later block, nothing new) tell the core nothing more.
    glue.committed(1, world.answer_commits_with)
    assert [type(e) for e in fed[-1:]] == [ev.PoolNotEmpty]


def test_a_block_that_sync_committed_first_is_not_committed_again():
    glue, world, fed = make_glue()
    header, _ = propose_and_execute(glue, world)
    world.head = 1  # block sync wrote height 1 meanwhile
    certify(glue, header)
    assert "commit" not in world.kinds() and glue.replica.hs.height == 2
    glue.block_synced(1, header.hash(SUITE), QUIET)
    assert type(fed[-1]) is ev.BlockCommitted  # the core ignores it: it is at height 2 already


def test_a_synced_block_moves_the_core_and_reminds_it_of_the_pool():
    glue, world, fed = make_glue()
    world.pool_work = True
    header, _ = make_header()
    glue.block_synced(1, header.hash(SUITE), QUIET)
    assert [type(e) for e in fed] == [ev.BlockCommitted, ev.PoolNotEmpty]
    assert glue.replica.hs.height == 2 and glue.replica.hs.pool_has_work


def test_timeouts_allow_for_how_long_blocks_take_to_execute_here():
    glue, world, _ = make_glue()
    propose_and_execute(glue, world, elapsed_ms=400.0)  # a moving average of 1/8: 50 ms
    _, _, delay_ms = world.last("timer")
    assert delay_ms == CFG.timeout_base_ms  # armed before the execution finished
    glue.timer_fired(world.last("timer")[1])  # the view times out: the next timer is padded
    _, _, delay_ms = world.last("timer")
    assert delay_ms == 2 * CFG.timeout_base_ms + 100


def test_timeouts_allow_for_a_full_block_however_small_the_recent_ones_were():
    # A load starting after small blocks: the average alone gave its first full block ~0.2 s,
    # and at 1,000,000 accounts the replicas changed view while the leader still built it.
    glue, world, _ = make_glue()
    txs = [SUITE.hash(b"tx %d" % i) for i in range(200)]
    propose_and_execute(glue, world, elapsed_ms=100.0, txs=txs)  # 0.5 ms per transaction
    assert glue.execution_allowance_ms() == int(2 * 0.5 * CFG.block_tx_count_max)
    glue.timer_fired(world.last("timer")[1])
    _, _, delay_ms = world.last("timer")
    assert delay_ms == 2 * CFG.timeout_base_ms + int(2 * 0.5 * CFG.block_tx_count_max)


def test_the_core_committing_a_block_nobody_executed_here_is_a_loud_error():
    class Core:
        suite, my_pub, cfg = SUITE, PUBS[0], CFG

        def start(self):
            return []

        def handle(self, event):
            header, txs = make_header()
            return [ev.Commit(header, txs, None)]

    world = World()
    glue = PbftGlue(Core(), world, world)
    with pytest.raises(AssertionError, match="never executed"):
        glue.pool_not_empty()
