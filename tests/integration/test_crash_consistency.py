"""Kill -9 a process that is committing blocks, 20 times at random moments
(CHAINNODE_CRASH_KILLS for more); after each kill the ledger reopens at a whole block whose
state root (the state tree's, header version 2) replays exactly from genesis."""

import os
import random
import signal
import subprocess
import sys
import time

from chainnode.crypto import get_suite
from chainnode.protocol.types import ZERO_HASH
from chainnode.store.ledger import Ledger
from chainnode.store.tree import StateTree
from tests.integration.crash_writer import SUITE_NAME, execute, sealer_keys

KILLS = int(os.environ.get("CHAINNODE_CRASH_KILLS", "20"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DictState:
    def __init__(self):
        self.data: dict[bytes, bytes] = {}

    def get(self, key):
        return self.data.get(key)

    def apply(self, writes):
        for k, v in writes.items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


def replay_and_check(data_dir, suite, sealer_pubs):
    """Reopen, then recompute every block's roots and the final state from genesis."""
    with Ledger.open(data_dir, suite) as ledger:
        head = ledger.head_height
        state = DictState()
        nodes: dict[bytes, bytes] = {}
        tree = StateTree(nodes.get, suite.hash)  # the replay's own tree, built block by block
        parent_hash, tx_total = ZERO_HASH, 0
        for height in range(head + 1):
            block = ledger.get_block(height)
            header = block.header
            assert header.parent_hash == parent_hash, f"block {height} does not chain"
            writes = execute(state, block.transactions) if height else {b"acct/0": b"0"}
            update = tree.update(height, writes, lambda k: state.get(k) is not None)
            assert header.version == 2 and update.root == header.state_root, f"state root of block {height}"
            nodes.update(update.batch_ops())
            tree.moved(height, update)
            for tx in block.transactions:
                assert ledger.get_receipt(tx.hash(suite)) is not None
            if height:
                ledger.get_certificate(height).verify(suite, sealer_pubs)
            state.apply(writes)
            parent_hash = header.hash(suite)
            tx_total += len(block.transactions)
        assert parent_hash == ledger.head_hash
        assert dict(ledger.state.items()) == state.data, "stored state differs from the replayed state"
        assert ledger.total_tx_count == tx_total
        return head


def test_sigkill_at_random_moments_never_leaves_a_partial_block(tmp_path):
    suite = get_suite(SUITE_NAME)
    sealer_pubs = [pub for _, pub in sealer_keys(suite)]
    rng = random.Random(int(os.environ.get("CHAINNODE_CRASH_SEED", "1")))
    data_dir = str(tmp_path / "node")
    env = dict(os.environ, PYTHONPATH=ROOT)
    last_reported = -1
    for kill in range(KILLS):
        child = subprocess.Popen([sys.executable, "-m", "tests.integration.crash_writer", data_dir], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            ready = child.stdout.readline().split()
            assert ready[0] == "ready", f"writer did not start: {ready}"
            assert int(ready[1]) >= last_reported
            # Kill only once it is committing, at a random moment of its stream of writes.
            first = child.stdout.readline()
            assert first.startswith("committed"), f"writer stopped: {first!r}"
            time.sleep(rng.uniform(0.0, 0.2))
            os.kill(child.pid, signal.SIGKILL)
            out = first + child.stdout.read()
        finally:
            child.kill()
            child.wait()
        # Only whole lines: the kill can land while the writer prints its last one.
        whole_lines = out.split("\n")[:-1]
        committed = [int(line.split()[1]) for line in whole_lines if line.startswith("committed ") and line.split()[1].isdigit()]
        if committed:
            last_reported = committed[-1]
        head = replay_and_check(data_dir, suite, sealer_pubs)
        # A commit the writer reported was synced first, so it must have survived.
        assert head >= last_reported, f"kill {kill}: head {head} lost reported block {last_reported}"
        last_reported = head
    assert last_reported >= KILLS, "the writer made too little progress to exercise the kills"
