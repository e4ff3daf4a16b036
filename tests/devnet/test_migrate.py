"""A devnet made by chainnode 0.1 (msgpack certificates in JSON files; the fixture was written
by that version) is refused with the command that converts it, and `devnet migrate` converts
it: the same keys and peer ids, X.509 certificates, a new block 0, and the node starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from devnet.cli import main as devnet_cli
from devnet.layout import devnet_client
from devnet.supervisor import Devnet, DevnetError

FIXTURE = Path(__file__).parent / "fixtures" / "devnet-0.1"


@pytest.fixture
def old_devnet(tmp_path) -> Path:
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_an_old_devnet_is_refused_with_the_command_that_converts_it(old_devnet):
    with pytest.raises(DevnetError) as info:
        Devnet(old_devnet)
    assert f"`devnet migrate --dir {old_devnet}`" in str(info.value) and "made by chainnode 0.1" in str(info.value)
    result = CliRunner().invoke(devnet_cli, ["status", "--dir", str(old_devnet)])
    assert result.exit_code == 1 and "devnet migrate --dir" in result.output and "Traceback" not in result.output


def test_migrate_keeps_the_keys_and_the_node_starts(old_devnet):
    before = json.loads((old_devnet / "devnet.json").read_text())["nodes"][0]
    key_before = (old_devnet / "node0" / "node.key").read_bytes()
    result = CliRunner().invoke(devnet_cli, ["migrate", "--dir", str(old_devnet)])
    assert result.exit_code == 0, result.output
    assert "converted" in result.output and "block 0 is new" in result.output

    genesis = json.loads((old_devnet / "genesis.json").read_text())
    assert "ca_cert" not in genesis and len(genesis["ca_certs"]) == 1
    assert (old_devnet / "node0" / "node.key").read_bytes() == key_before
    assert not list(old_devnet.rglob("*.chain")) and not (old_devnet / "ca" / "ca.cert").exists()
    net = Devnet(old_devnet)
    node = net.nodes[0]
    assert (node.peer_id, node.consensus_pub) == (before["peer_id"], before["consensus_pub"]) and node.revocation_id
    assert (old_devnet / "node0" / "node.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")

    again = CliRunner().invoke(devnet_cli, ["migrate", "--dir", str(old_devnet)])
    assert again.exit_code == 1 and "nothing to convert" in again.output

    # The converted devnet runs: its node admits the devnet's client certificate on the channel port.
    net.start("node0")
    try:
        net.wait_rpc("node0", timeout_s=60)

        async def height() -> int:
            async with devnet_client(old_devnet, node.channel_url, timeout_s=30) as client:
                return await client.block_number()

        assert trio.run(height) >= 0
    finally:
        net.stop("node0")
