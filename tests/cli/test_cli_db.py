"""`chainnode db snapshot | restore | verify | export-blocks | import-blocks` on real data
directories with the node stopped (a running node answers through its admin socket:
tests/node/test_admin.py, tests/integration/test_backup.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.protocol.codec import pack, unpack
from chainnode.store.leveldb import Store
from chainnode.store.tree import StateTree, decode_ref, root_key
from chainnode.system.genesis import load_genesis, parse_genesis
from tests.chain_fixtures import GENESIS, GENESIS_0_2, SUITE, grow, open_chain
from tests.store.test_verify import FETCHED_FROM, GENESIS_WINDOW_10, SNAPSHOT_AT, follow, joined_by_snapshot

BLOCKS = 5


def node_folder(folder: Path, *, blocks: int, genesis=GENESIS, block_history_blocks: int = 0) -> Path:
    """A stopped node's folder: its chain (block 0 and `blocks` more) and a node.toml."""
    chain = open_chain(folder, genesis)
    chain.ledger.block_history_blocks = block_history_blocks  # (node.toml's minimum is 128)
    grow(chain, blocks)
    chain.ledger.close()
    (folder / "genesis.json").write_text(json.dumps(genesis.to_json()))
    (folder / "node.toml").write_text('[node]\ndata_dir = "."\ngenesis_file = "genesis.json"\n')
    assert load_genesis(folder / "genesis.json").hash() == genesis.hash()
    return folder / "node.toml"


def db(*args: str):
    return CliRunner().invoke(main, ["db", *map(str, args)])


@pytest.fixture
def config(tmp_path) -> Path:
    return node_folder(tmp_path / "node", blocks=BLOCKS)


def test_snapshot_restore_verify(tmp_path, config):
    backup = tmp_path / "node.backup"
    made = db("snapshot", "--config", config, "--out", backup)
    assert made.exit_code == 0, made.output
    assert f"wrote {backup}: block {BLOCKS} (" in made.output and "with the node stopped" in made.output and "MB/s" in made.output
    again = db("snapshot", "--config", config, "--out", backup)
    assert again.exit_code == 1 and "exists; choose another --out" in again.output

    restored = db("restore", "--in", backup, "--data-dir", tmp_path / "restored", "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.output)["height"] == BLOCKS
    checked = db("verify", "--data-dir", tmp_path / "restored")
    assert checked.exit_code == 0, checked.output
    assert f"blocks 0..{BLOCKS} ({BLOCKS} transactions) verified" in checked.output

    into_chain = db("restore", "--in", backup, "--config", config)
    assert into_chain.exit_code == 1 and "already holds a chain at block 5 (chain.db); restore into an empty directory" in into_chain.output
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(backup.read_bytes()[:-100])
    cut = db("restore", "--in", truncated, "--data-dir", tmp_path / "cut")
    assert cut.exit_code == 1 and "is truncated; copy it again" in cut.output
    assert not (tmp_path / "cut" / "chain.db").exists()
    neither = db("restore", "--in", backup)
    assert neither.exit_code == 2 and "pass either --config node.toml or --data-dir DIR" in neither.output


def test_restore_with_config_refuses_a_backup_of_another_chain(tmp_path, config):
    other = parse_genesis({**GENESIS.to_json(), "chain_id": "other"})
    other_config = node_folder(tmp_path / "other", blocks=1, genesis=other)
    backup = tmp_path / "other.backup"
    assert db("snapshot", "--config", other_config, "--out", backup).exit_code == 0
    fresh = node_folder(tmp_path / "fresh", blocks=0)  # what `chainnode init` leaves: block 0
    refused = db("restore", "--in", backup, "--config", fresh)
    assert refused.exit_code == 1 and "is a backup of another chain (other, genesis" in refused.output
    ok = db("restore", "--in", tmp_path / "other.backup", "--data-dir", tmp_path / "anywhere")
    assert ok.exit_code == 0, ok.output


def tamper(data_dir: Path, how: str) -> None:
    with Store(data_dir, upgrading=True) as store:
        if how == "receipt":  # block 4's
            key = b"r:" + unpack(store.get(b"b:" + (4).to_bytes(8, "big")), max_bytes=1024)[0]
            flipped = bytearray(store.get(key))
            flipped[-1] ^= 0x01
            store.write_batch([(key, bytes(flipped))])
        elif how == "header":
            store.write_batch([], deletes=[b"h:" + (2).to_bytes(8, "big")])
        elif how == "certificate":
            _, good = next(store.iterate(b"c:" + (3).to_bytes(8, "big")))
            store.write_batch([(b"c:" + (4).to_bytes(8, "big"), good)])  # block 3's certificate at block 4
        elif how == "head header":
            store.write_batch([], deletes=[b"h:" + BLOCKS.to_bytes(8, "big")])
        elif how == "state value":
            key, value = next(store.iterate(b"s:sys/nodes"))
            store.write_batch([(key, value + b"\x00")])
        elif how == "state tree leaf":  # one of the head's tree (older heights' nodes stay for proofs)
            tree = StateTree(store.get, SUITE.hash)
            leaf = next(k for k, ref, _ in tree.walk(decode_ref(store.get(root_key(BLOCKS)))) if ref[2])
            record = bytearray(store.get(leaf))
            record[-1] ^= 0x01  # the value's last byte
            store.write_batch([(leaf, bytes(record))])


@pytest.mark.parametrize("how, says", [
    ("receipt", "block 4: its receipts do not hash to its receipt root"),
    ("header", "block 2: its header is missing (h:2)"),
    ("certificate", "block 4: its commit certificate is for another block"),
    ("head header", f"the head block {BLOCKS} does not match its stored header"),
    ("state value", "state key b'sys/nodes': its value (s:) is not the one the state tree holds"),
    ("state tree leaf", "does not hash to what its parent holds"),
])
def test_verify_names_what_was_tampered_with(tmp_path, config, how, says):
    data = config.parent
    tamper(data, how)
    result = db("verify", "--config", config)
    assert result.exit_code == 1 and says in result.output, result.output


def test_verify_passes_a_chain_from_before_the_state_tree(tmp_path):
    # Header version 1: its state root is a chained digest, which the state cannot reproduce.
    config = node_folder(tmp_path / "old", blocks=3, genesis=GENESIS_0_2)
    result = db("verify", "--config", config)
    assert result.exit_code == 0 and "blocks 0..3 (3 transactions) verified" in result.output, result.output


def test_verify_lists_every_problem_in_json(tmp_path, config):
    tamper(config.parent, "receipt")
    tamper(config.parent, "header")
    result = db("verify", "--config", config, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"] and report["problemsTotal"] == len(report["problems"])
    # Exactly what was done, and nothing it merely hides (block 3's parent link, the totals).
    assert [p.split(" (")[0] for p in report["problems"]] == [
        "block 2: its header is missing", "block 4: the receipt of transaction 0", "block 4: its receipts do not hash to its receipt root"]


def test_a_pruned_directory_verifies_its_headers_and_certificates_and_exports_only_what_it_keeps(tmp_path):
    # grow's transactions may be in blocks up to 10 after their own: bodies go 10 blocks behind the head.
    config = node_folder(tmp_path / "pruned", blocks=15, block_history_blocks=2)
    checked = db("verify", "--config", config, "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert (report["height"], report["blocks"], report["bodiesFrom"], report["transactions"]) == (15, 16, 6, 10)
    text = db("verify", "--config", config).output
    assert "blocks 0..15 (bodies from block 6 on, 10 transactions; those before are pruned: their headers and certificates checked) verified" in text
    refused = db("export-blocks", "--config", config, "--from", 3, "--to", 8, "--out", tmp_path / "old.archive")
    assert refused.exit_code == 1 and "blocks 3..8 are not all kept here: this node keeps block bodies from block 6 on" in refused.output
    assert "choose --from 6 or later, or export the older blocks from an archive node" in refused.output
    assert not (tmp_path / "old.archive").exists()
    assert db("export-blocks", "--config", config, "--from", 6, "--out", tmp_path / "kept.archive").exit_code == 0
    with Store(config.parent, upgrading=True) as store:  # below the mark, what stays is still checked
        _, good = next(store.iterate(b"c:" + (3).to_bytes(8, "big")))
        limit_of_9 = store.get(b"l:" + (9).to_bytes(8, "big"))
        store.write_batch([(b"c:" + (2).to_bytes(8, "big"), good), (b"l:" + (9).to_bytes(8, "big"), pack(1))])
    result = db("verify", "--config", config)
    assert result.exit_code == 1 and "block 2: its commit certificate is for another block" in result.output, result.output
    assert f"block 9: its l:9 record says block_limit 1, its transactions' highest is {unpack(limit_of_9, max_bytes=16)}" in result.output


async def test_verify_says_what_a_node_that_started_from_a_snapshot_never_had(tmp_path):
    server = open_chain(tmp_path / "server", GENESIS_WINDOW_10)
    grow(server, SNAPSHOT_AT)
    joiner = await joined_by_snapshot(server, tmp_path / "joiner")
    follow(joiner, server, 1)
    joiner.ledger.close()
    server.ledger.close()
    text = db("verify", "--data-dir", tmp_path / "joiner").output
    assert (f"blocks 0 and {FETCHED_FROM}..{SNAPSHOT_AT + 1} (started from a snapshot: blocks 1..{FETCHED_FROM - 1} were never here; "
            f"blocks {FETCHED_FROM}..{SNAPSHOT_AT} hold their transactions without receipts, as fetched to refuse replays; 10 transactions) "
            "verified") in text, text
    report = json.loads(db("verify", "--data-dir", tmp_path / "joiner", "--json").output)
    assert report["ok"] and (report["fromSnapshot"], report["headersFrom"], report["withoutReceipts"], report["absentTransactions"]) == (
        True, FETCHED_FROM, [FETCHED_FROM, SNAPSHOT_AT], FETCHED_FROM - 1)


def test_export_then_import_seeds_a_fresh_node(tmp_path, config):
    archive = tmp_path / "blocks.archive"
    made = db("export-blocks", "--config", config, "--out", archive)
    assert made.exit_code == 0 and f"blocks 1..{BLOCKS}" in made.output, made.output
    fresh = node_folder(tmp_path / "fresh", blocks=0)
    imported = db("import-blocks", "--in", archive, "--config", fresh, "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output) | {"ms": 0} == {"file": str(archive), "from": 1, "to": BLOCKS, "applied": BLOCKS, "height": BLOCKS, "ms": 0}
    assert db("verify", "--config", fresh).exit_code == 0
    with Store(config.parent, upgrading=True) as a, Store(fresh.parent, upgrading=True) as b:
        assert a.get(b"m:head") == b.get(b"m:head")
    again = db("import-blocks", "--in", archive, "--config", fresh)  # what the node has is skipped
    assert again.exit_code == 0 and "0 applied" in again.output

    later = tmp_path / "later.archive"
    assert db("export-blocks", "--config", config, "--from", 4, "--to", 5, "--out", later).exit_code == 0
    gap = db("import-blocks", "--in", later, "--config", node_folder(tmp_path / "empty", blocks=0))
    assert gap.exit_code == 1 and "begins at block 4, but this node's head is block 0: import blocks 1..3 first" in gap.output


def test_import_refuses_an_archive_of_another_chain(tmp_path, config):
    other = parse_genesis({**GENESIS.to_json(), "chain_id": "other"})
    other_config = node_folder(tmp_path / "other", blocks=2, genesis=other)
    archive = tmp_path / "other.archive"
    assert db("export-blocks", "--config", other_config, "--out", archive).exit_code == 0
    refused = db("import-blocks", "--in", archive, "--config", config)
    assert refused.exit_code == 1 and "holds blocks of another chain (other, genesis" in refused.output
    missing = db("import-blocks", "--in", tmp_path / "nothing", "--config", config)
    assert missing.exit_code == 1 and "not found" in missing.output


def test_commands_that_need_the_node_stopped_say_so(tmp_path, config):
    archive = tmp_path / "blocks.archive"
    assert db("export-blocks", "--config", config, "--out", archive).exit_code == 0
    with Store(config.parent):  # a node (without an admin socket) holds the directory
        snapshot = db("snapshot", "--config", config, "--out", tmp_path / "x")
        verify = db("verify", "--config", config)
        imported = db("import-blocks", "--in", archive, "--config", config)
    assert snapshot.exit_code == 1 and "in use by another node" in snapshot.output and "admin.sock, which did not answer" in snapshot.output
    assert verify.exit_code == 1 and "stop that node first" in verify.output
    assert imported.exit_code == 1 and "stop that node first" in imported.output
