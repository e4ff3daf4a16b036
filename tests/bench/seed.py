"""A chain that already holds N accounts, built offline and honestly, for the scale
benchmark (tests/bench/scale.py):

    python -m tests.bench.seed --dir DIR [--accounts 1000000]   (a devnet in DIR, seeded; prints the time)

Every block is a real certified block of real signed transactions that the real Executor
ran: `Chain.execute_proposal` on node0's ledger, certified by 2f+1 of the devnet's sealers
with their consensus keys (the devnet keeps them in <node>/node.key), committed with
`Chain.commit`. Nothing is written behind the chain's back, so a node that replays the
chain from genesis re-executes exactly these blocks and reaches the same roots. Then
node0's chain.db is copied to the other sealers (they have not started: they hold only
block 0, the same genesis).

The chain: block 1 deploys devnet/bench.py's TOKEN from the funder; block 2 funds the
load's senders (`SENDERS`); then blocks of `txs_per_block` transfers of 1 unit from the
funder, each to a new address (`account_address(i)`): one account per transaction. The
keys are derived from fixed seeds (a benchmark's, not secrets), so the load generator can
rebuild the senders and recipients from `SeedInfo` alone.

Signing is the slow half (SM2, ~3,900 signatures/s per core): a process pool signs the
blocks ahead while this process executes and commits them in order.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import plyvel

from chainnode.crypto import get_suite
from chainnode.execution.chain import Chain
from chainnode.execution.executor import Executor
from chainnode.node.init import open_chain_ledger
from chainnode.protocol.types import CommitCertificate, Transaction, commit_signing_bytes
from chainnode.security.keyfile import load_key
from chainnode.store.leveldb import BLOOM_FILTER_BITS
from chainnode.system.genesis import load_genesis
from contracts.engine import Engine
from devnet.bench import TOKEN
from devnet.layout import DEVNET_PASSWORD
from devnet.supervisor import Devnet

SEED_FILE = "seed.json"
# The chains of tests/bench/scale.py: tests/bench/chain.py's (200 ms blocks of up to 2,000 transactions).
SCALE_CONFIG = {"block_interval_min_ms": 200, "tx_count_limit": 2000}
SENDERS = 64  # the load's funded senders (devnet/bench.py spreads a run over 1 per 1,000 transfers)
SENDER_SUPPLY = 10**12  # each sender's balance
TXS_PER_BLOCK = 2_000
GAS_LIMIT = 1_000_000
BLOCK_LIMIT_AHEAD = 100  # a transaction's block_limit: its block + this (inside any block_limit_window >= 101)
SIGN_CHUNK = 500  # transactions per signing job


def _private(label: bytes, i: int) -> bytes:
    """A benchmark's fixed private key: SM3(label, i), which is below the curve order."""
    return get_suite("sm").hash(label + i.to_bytes(8, "big"))


def funder_private() -> bytes:
    return _private(b"chainnode-bench-funder", 0)


def sender_private(i: int) -> bytes:
    return _private(b"chainnode-bench-sender", i)


def account_address(i: int) -> bytes:
    """The address of the chain's i-th seeded account (0 <= i < SeedInfo.accounts)."""
    return get_suite("sm").hash(b"chainnode-bench-account" + i.to_bytes(8, "big"))[:20]


@dataclass
class SeedInfo:
    accounts: int
    token: str  # hex address of the TOKEN contract
    senders: int
    height: int  # the head after seeding
    transactions: int  # committed by the seeding
    seconds: float

    def save(self, folder: Path) -> None:
        (folder / SEED_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "SeedInfo":
        return cls(**json.loads((folder / SEED_FILE).read_text()))


def _sign_transfers(chain_id: str, group_id: str, token: bytes, first: int, count: int, block_limit: int) -> list[bytes]:
    """Encoded transfers of 1 unit from the funder to accounts first .. first + count - 1
    (run in a worker process)."""
    suite = get_suite("sm")
    priv = funder_private()
    pub = suite.keypair_from_private(priv)[1]
    out = []
    for i in range(first, first + count):
        tx = Transaction(chain_id, group_id, i.to_bytes(8, "big"), block_limit, token, "transfer", [account_address(i), 1], GAS_LIMIT, pub)
        out.append(tx.signed(suite, priv).encode())
    return out


class _Sealers:
    """Certifies blocks with 2f+1 of the devnet's sealers (their node.key files)."""

    def __init__(self, net: Devnet, chain: Chain) -> None:
        self.suite = chain.suite
        self.chain = chain
        keys = {}
        for node in net.nodes:
            if node.role == "sealer":
                pair = load_key(node.folder / "node.key", DEVNET_PASSWORD)
                keys[pair.public_key] = pair.private_key
        self.keys = keys

    def commit(self, txs: list[Transaction], timestamp_ms: int) -> None:
        chain = self.chain
        # The seeding process signed every transaction itself: checking them again here
        # would double the seeding's cost and prove nothing (a replaying node checks them).
        proposal = chain.execute_proposal(txs, timestamp_ms=timestamp_ms, proposer_index=0, is_verified=lambda h: True)
        assert len(proposal.transactions) == len(txs), "a seeding block was cut by block_gas_limit; lower txs_per_block"
        failed = [r for r in proposal.executed.receipts if r.status != 0]
        assert not failed, f"a seeding transaction failed: {failed[0].error_type} {failed[0].error_message}"
        header = proposal.header
        block_hash = header.hash(self.suite)
        sealers = chain.sealers()
        quorum = len(sealers) - (len(sealers) - 1) // 3
        msg = commit_signing_bytes(header.height, block_hash)
        signatures = [(i, self.suite.sign(self.keys[s.consensus_pub], msg)) for i, s in enumerate(sealers[:quorum])]
        assert chain.commit(proposal, CommitCertificate(header.height, block_hash, signatures))


def _settle(db_path: Path) -> None:
    """Compact the seeded database whole, as a node that ran for months has it: fresh from a
    bulk load its upper levels were over their sizes, and each node started on it spent
    its first ~4 s of CPU compacting, during the first TPS round."""
    db = plyvel.DB(str(db_path), bloom_filter_bits=BLOOM_FILTER_BITS)  # the node's options (chainnode/store/leveldb.py)
    try:
        db.compact_range(start=b"\x00", stop=b"\xff" * 8)  # every key (all start with a letter); no bounds compacts nothing
    finally:
        db.close()


def seed(net: Devnet, accounts: int, *, txs_per_block: int = TXS_PER_BLOCK, workers: int = 2, progress=lambda done, total: None) -> SeedInfo:
    """Seed the stopped, new devnet `net` (its sealers at block 0) with `accounts` accounts
    (see the module docstring); returns what the load generator needs, also saved in
    <devnet>/seed.json."""
    started = time.monotonic()
    genesis = load_genesis(net.folder / "genesis.json")
    suite = get_suite(genesis.suite)
    assert suite.name == "sm", "the seeded keys are SM2 keys"
    sealers = [n for n in net.nodes if n.role == "sealer"]
    first = sealers[0]
    ledger = open_chain_ledger(first.folder, genesis, create=False)
    try:
        assert ledger.head_height == 0, f"{first.folder} is past block 0: seed a new devnet"
        chain = Chain(ledger, Executor(suite, Engine(suite), genesis.chain_id, genesis.group_id))
        certify = _Sealers(net, chain)
        funder_priv = funder_private()
        funder_pub = suite.keypair_from_private(funder_priv)[1]
        clock = [genesis.timestamp_ms]

        def block(txs: list[Transaction]) -> None:
            clock[0] += 1
            certify.commit(txs, clock[0])

        def funder_tx(to: bytes, method: str, args: list, nonce: int) -> Transaction:
            return Transaction(genesis.chain_id, genesis.group_id, b"setup" + nonce.to_bytes(8, "big"), chain.height + 1 + BLOCK_LIMIT_AHEAD,
                               to, method, args, 10 * GAS_LIMIT, funder_pub).signed(suite, funder_priv)

        deploy = funder_tx(b"", "", [TOKEN, [accounts + SENDERS * SENDER_SUPPLY]], 0)
        block([deploy])
        token = ledger.get_receipt(deploy.hash(suite)).contract_address
        assert token, "the TOKEN deploy failed"
        senders = [suite.address(suite.keypair_from_private(sender_private(i))[1]) for i in range(SENDERS)]
        block([funder_tx(token, "transfer", [address, SENDER_SUPPLY], 1 + i) for i, address in enumerate(senders)])

        # Block b (from 3 on) holds accounts [(b - 3) * per, ...): its transactions are signed
        # ahead in chunks by the pool, and committed here in order.
        jobs = []
        height = chain.height + 1
        for start in range(0, accounts, txs_per_block):
            count = min(txs_per_block, accounts - start)
            jobs.append([(start + k, min(SIGN_CHUNK, count - k), height + BLOCK_LIMIT_AHEAD) for k in range(0, count, SIGN_CHUNK)])
            height += 1
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
        done = 0
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            signed = [[pool.submit(_sign_transfers, genesis.chain_id, genesis.group_id, token, *chunk) for chunk in chunks] for chunks in jobs]
            for futures in signed:
                block([Transaction.decode(raw) for f in futures for raw in f.result()])
                done += sum(len(f.result()) for f in futures)
                progress(done, accounts)
        info = SeedInfo(accounts=accounts, token=token.hex(), senders=SENDERS, height=chain.height,
                        transactions=ledger.total_tx_count, seconds=0.0)
    finally:
        ledger.close()
    source = first.folder / "chain.db"
    _settle(source)
    for node in sealers[1:]:
        shutil.rmtree(node.folder / "chain.db")
        shutil.copytree(source, node.folder / "chain.db")
    info.seconds = round(time.monotonic() - started, 1)
    info.save(net.folder)
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="a new folder: the devnet is created there")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--txs-per-block", type=int, default=TXS_PER_BLOCK)
    ap.add_argument("--workers", type=int, default=2, help="signing processes")
    args = ap.parse_args()
    from tests.integration.cluster import Cluster

    cluster = Cluster(args.dir, sealers=4, observers=2, config=SCALE_CONFIG)
    t = time.monotonic()
    info = seed(cluster.net, args.accounts, txs_per_block=args.txs_per_block, workers=args.workers,
                progress=lambda d, n: print(f"\r{d:,}/{n:,} accounts, {d / (time.monotonic() - t):,.0f}/s", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(f"seeded {info.accounts:,} accounts in {info.height} blocks ({info.transactions:,} transactions) in {info.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
