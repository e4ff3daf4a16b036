"""`devnet demo`: the three business stories on a real 4-node devnet, each checking its own
outcome. The payment story runs through the installed `devnet demo` command; the other two
call the story functions directly (as a dApp would), and the narrative's key lines are
checked either way."""

from __future__ import annotations

import os
import subprocess

import pytest

from chainnode.client import Account, Client
from devnet.demo import (
    Roles,
    StoryFailed,
    cross_border_story,
    genesis_sealers,
    load_roles,
    payment_story,
    resolve,
    supply_chain_story,
)
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster

DEVNET = os.path.join(os.path.dirname(CHAINNODE), "devnet")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "net"
    with Cluster(folder, config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as c:
        c.start_all()
        yield c


def narrator():
    lines: list[str] = []
    return lines, lambda text, style=None: lines.append(text)


def test_payment_story_through_the_cli(net) -> None:
    p = subprocess.run([DEVNET, "demo", "payment", "--dir", str(net.folder), "--node", "node1"],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "devnet demo payment: on node1" in out
    assert "The central bank issues 1,000,000.00 yuan (100000000 fen) into Bank A's reserve" in out
    assert "Issued(amount=100000000, operator=Bank A" in out
    # small and anonymous: Transfer only; large: LargeTransfer with both commitments
    assert "Transfer(amount=1250, frm=the tourist, memo='noodles', to=the noodle stall)" in out
    assert "LargeTransfer(amount=5000000, frm=Alice, frm_kyc=0x" in out and "to_kyc=0x" in out
    assert "WalletFrozen(reason='court order 2026-17', wallet=Bob)" in out
    assert "REFUSED, nothing changed: \"the recipient's wallet is frozen by the regulator" in out
    assert "REFUSED, nothing changed: \"your wallet is frozen by the regulator" in out
    # offline: two vouchers paid, then the reused counter and the voucher beyond the lock reported
    assert out.count("OfflinePayment(payer=the tourist") == 2
    assert "OfflineDoubleSpend(payer=the tourist, purse=1, counter=1, payee=the fruit stall" in out
    assert "counter reused" in out and "exceeds the locked amount" in out
    assert "Retired(amount=20000000, operator=Bank B" in out
    assert ("Supply invariant holds: total supply 1,800,000.00 yuan (180000000 fen) = issued 2,000,000.00 yuan (200000000 fen)"
            " - retired 200,000.00 yuan (20000000 fen).") in out
    assert "the payment story ran to its end" in out


async def test_supply_chain_story(net) -> None:
    lines, say = narrator()
    async with Client(net.layout[0].rpc_url) as client:
        result = await supply_chain_story(client, load_roles(net.folder), say)
    text = "\n".join(lines)
    code = result["code"]
    assert result["recalled"] == [code, f"{code}-A", f"{code}-B"]
    assert f"BatchCreated(code='{code}', product='yellow croaker', quantity=1000000, producer=Haiyu 7)" in text
    assert f"Received(code='{code}', frm=Haiyu 7, holder=Zhoushan cold plant)" in text
    assert f"RecordAdded(code='{code}', kind='inspection'" in text
    assert f"Split(code='{code}', holder=Zhoushan cold plant, new_codes=['{code}-A', '{code}-B'], quantities=[600000, 400000])" in text
    assert f"Recalled(code='{code}-A', origin='{code}'); Recalled(code='{code}-B', origin='{code}')" in text
    # the split batch's history starts with its parent's, on the boat
    history = [line for line in lines if line.lstrip().startswith("block") and "  " in line.strip()[6:]]
    assert f"{code}    created" in history[0] and "by Haiyu 7" in history[0]
    assert f"{code}-B  RECALLED" in history[-1]
    assert f"{code}-B's history starts on the boat: 11 steps, 5 of them its parent {code}'s." in text


async def test_cross_border_story_with_a_proof_against_the_genesis_sealers(net) -> None:
    lines, say = narrator()
    async with Client(net.layout[2].rpc_url) as client:
        result = await cross_border_story(client, load_roles(net.folder), say, sealer_pubs=genesis_sealers(net.folder))
    text = "\n".join(lines)
    trade, pay = result["trade"], result["payment"]
    assert f"TradeDeclared(ref='{trade}', currency='CNY', amount=100000000, customs=Shenzhen Customs, jurisdiction='CN')" in text
    assert "currency='HKD', amount=108695652, fx_rate=920000, converted=100000000)" in text
    assert f"PaymentSettled(amount=108695652, currency='HKD', payee_bank=Harbour Bank (HK), ref='{pay}'" in text
    assert "matched: True" in text
    assert f"REFUSED, nothing changed: \"payments against trade {trade} would total 101840000 but it was declared at 100000000" in text
    assert result["signatures"] >= 3  # a quorum of 4
    assert (f"Settlement of {pay} verified offline against {result['signatures']} sealers' signatures "
            f"(a quorum of the 4 sealers; block {result['block']})") in text


async def test_a_story_reports_what_the_chain_did_not_do(net) -> None:
    # Role accounts that are not the contract's: the story stops at once and says why.
    strangers = Roles(*(Account.generate("sm") for _ in range(3)))
    lines, say = narrator()
    async with Client(net.layout[0].rpc_url) as client:
        with pytest.raises(StoryFailed, match="issuer and regulator are not accounts/central-bank.key"):
            await payment_story(client, strangers, say)
        with pytest.raises(StoryFailed, match="no contract is registered under 'nothing'"):
            await resolve(client, "nothing")


def test_demo_on_a_stopped_devnet_says_how_to_start_it(net) -> None:
    p = subprocess.run([DEVNET, "demo", "cross-border", "--dir", str(net.folder), "--node", "node9"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "no node 'node9'" in p.stderr, p.stderr
    net.stop(3)
    try:
        p = subprocess.run([DEVNET, "demo", "supply-chain", "--dir", str(net.folder), "--node", "node3"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "node3 is not running; start it with `devnet start node3" in p.stderr
        assert "Traceback" not in p.stderr
    finally:
        net.start(3)
