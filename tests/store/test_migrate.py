"""`chainnode db migrate` on a data directory written by the previous format (the fixture was
written by chainnode 0.1.0's ledger: block 0 and three blocks of the shared test chain)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.protocol.versions import SOFTWARE_VERSION
from chainnode.store.leveldb import FORMAT, FORMAT_KEY, StorageError, Store
from chainnode.store.migrate import migrate, plan
from tests.chain_fixtures import GENESIS_0_2, grow, open_chain

FIXTURE = Path(__file__).parent / "fixtures" / "ledger-format1"


@pytest.fixture
def old_dir(tmp_path) -> Path:
    data = tmp_path / "node"
    shutil.copytree(FIXTURE, data)
    (data / "node.toml").write_text('[node]\ndata_dir = "."\n')
    return data


def test_the_old_format_is_refused_with_the_command_that_upgrades_it(old_dir):
    with pytest.raises(StorageError, match=r"written by chainnode 0.1.*back the directory up, then run `chainnode db migrate"):
        Store(old_dir)


def test_migrate_upgrades_in_place_and_the_chain_goes_on(old_dir):
    before, steps = plan(old_dir)
    assert before == "chainnode-ledger/1" and [s.target for s in steps] == [FORMAT]
    assert migrate(old_dir, dry_run=True)[1] == steps
    with Store(old_dir, upgrading=True) as store:
        assert store.get(FORMAT_KEY) == b"chainnode-ledger/1"  # a dry run changes nothing
    migrate(old_dir)
    chain = open_chain(old_dir)
    try:
        assert chain.height == 3 and chain.ledger.genesis_hash == GENESIS_0_2.hash()  # every block kept
        assert chain.ledger.get_block(2) is not None and chain.ledger.get_certificate(3) is not None
        grow(chain, 2)  # and it goes on from there, under the rules it had (header version 1)
        assert chain.height == 5 and chain.ledger.head_header.version == 1
        assert [v for v, _ in chain.ledger._store.versions()] == [SOFTWARE_VERSION]
    finally:
        chain.ledger.close()
    assert migrate(old_dir)[1] == []  # again: nothing to do


def test_a_newer_or_foreign_format_is_not_touched(tmp_path, old_dir):
    with Store(old_dir, upgrading=True) as store:
        store.write_batch([(FORMAT_KEY, b"chainnode-ledger/99")])
    with pytest.raises(StorageError, match="a newer release wrote it"):
        migrate(old_dir)
    with pytest.raises(StorageError, match="does not exist|no chain database"):
        migrate(tmp_path / "nothing")


def test_the_cli_reports_each_step(old_dir):
    runner = CliRunner()
    config = str(old_dir / "node.toml")
    info = runner.invoke(main, ["db", "info", "--config", config])
    assert info.exit_code == 0 and "run `chainnode db migrate`" in info.output and "head: block 3" in info.output
    dry = runner.invoke(main, ["db", "migrate", "--config", config, "--dry-run"])
    assert dry.exit_code == 0 and "would run chainnode-ledger/1 -> chainnode-ledger/2" in dry.output
    done = runner.invoke(main, ["db", "migrate", "--config", config, "--json"])
    assert done.exit_code == 0 and '"format": "chainnode-ledger/2"' in done.output
    again = runner.invoke(main, ["db", "migrate", "--config", config])
    assert "nothing to do" in again.output
    # While a node holds the directory, migrate says so instead of touching it.
    with Store(old_dir):
        busy = runner.invoke(main, ["db", "migrate", "--config", config])
    assert busy.exit_code == 1 and "in use by another node" in busy.output
    missing = runner.invoke(main, ["db", "migrate", "--config", str(old_dir / "nope.toml")])
    assert missing.exit_code == 1 and "chainnode init" in missing.output
