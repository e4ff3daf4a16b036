"""A small dApp on chainnode: connect over the node's SM secure channel with a client
certificate, deploy a contract, send transactions, follow its events over a subscription,
and verify a receipt proof offline.

Start a local chain first (`make run`: channel ports chainnode://127.0.0.1:20200 ..., client
certificates in devnet-data/clients/, password "devnet"), then:

    .venv/bin/python docs/examples/dapp.py [--url chainnode://127.0.0.1:20200] \
        [--key devnet-data/clients/user.key --cert devnet-data/clients/user.chain] [--genesis devnet-data/genesis.json]

(`--url http://127.0.0.1:8545`, the node's plain HTTP port, needs no certificate, on the node's machine.)

The sealer keys that anchor the proof come from the genesis file when there is one (trust
the consortium's file, not the node); otherwise from the node itself, with a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import trio

from chainnode.client import Account, Client, EventNotification, ProofError

SHIPMENTS = """
def init():
    storage["count"] = 0

def register(shipment, destination):
    require(len(shipment) > 0, "shipment id is empty")
    require(not storage.get("s:" + shipment), "shipment already registered")
    storage["s:" + shipment] = destination
    storage["count"] = storage["count"] + 1
    emit("Registered", shipment=shipment, destination=destination, sender=ctx.sender)
    return storage["count"]
"""

SHIPMENT_COUNT = 3
TIMEOUT_S = 60


def sealers_from_genesis(path: Path) -> list[bytes]:
    genesis = json.loads(path.read_text())
    return [bytes.fromhex(n["consensus_pub"]) for n in genesis["nodes"] if n.get("role", "sealer") == "sealer"]


async def main(url: str, key: Path, cert: Path, password: str, genesis: Path | None) -> int:
    alice = Account.generate("sm")  # a throwaway account that signs; `Account.load(path, password)` for a key file
    # Over the channel the client proves its client certificate (key + chain from `chainnode ca issue-client`).
    credentials = {"key": key, "password": password, "cert": cert} if url.startswith("chainnode://") else {}
    async with Client(url, **credentials) as client:
        info = await client.group_info()
        print(f"connected to {info['nodeName']} ({info['chainId']}/{info['groupId']}, suite {info['suite']}) at block {info['blockNumber']}")

        deployed = await client.deploy(alice, SHIPMENTS, [], timeout_s=TIMEOUT_S)
        contract = deployed.contract_address
        print(f"deployed at 0x{contract.hex()} in block {deployed.block_number}")

        received: list[EventNotification] = []

        async def follow_events(task_status=trio.TASK_STATUS_IGNORED) -> None:
            # From the deploy block: nothing emitted between deploy and subscribe is missed.
            async with client.subscribe_events(address=contract, name="Registered", from_block=deployed.block_number) as events:
                task_status.started()
                async for ev in events:
                    received.append(ev)
                    print(f"  event {ev.event.name} {ev.event.fields['shipment']} -> {ev.event.fields['destination']}"
                          f" (block {ev.block_number}, tx {ev.tx_index}, log {ev.log_index})")
                    if len(received) == SHIPMENT_COUNT:
                        return

        last = None
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(follow_events)
                for i in range(SHIPMENT_COUNT):
                    last = await client.send(alice, contract, "register", [f"SHP-{i:03d}", "Rotterdam"], timeout_s=TIMEOUT_S)
                    print(f"registered SHP-{i:03d}: output {last.output}, block {last.block_number}")
        assert [ev.event.fields["shipment"] for ev in received] == [f"SHP-{i:03d}" for i in range(SHIPMENT_COUNT)]

        if genesis is not None and genesis.exists():
            sealers = sealers_from_genesis(genesis)
            print(f"verifying against the {len(sealers)} sealers of {genesis}")
        else:
            sealers = await client.sealer_pubs()
            print("warning: no genesis file; verifying against the sealers the node reports (this trusts the node)")
        try:
            proven = await client.get_verified_receipt(last.tx_hash, sealers)
        except ProofError as exc:
            print(f"receipt proof FAILED: {exc}")
            return 1
        print(f"receipt of 0x{proven.tx_hash.hex()[:16]}... proven in block {proven.block_number}: "
              "certificate, header and Merkle proof all check out")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="chainnode://127.0.0.1:20200", help="a node's channel port (or http://... its HTTP port)")
    parser.add_argument("--key", type=Path, default=Path("devnet-data/clients/user.key"), help="your account key file (the one your certificate is for)")
    parser.add_argument("--cert", type=Path, default=Path("devnet-data/clients/user.chain"), help="your client certificate chain (chainnode ca issue-client)")
    parser.add_argument("--password", default="devnet", help="the key file's password")
    parser.add_argument("--genesis", type=Path, default=Path("devnet-data/genesis.json"), help="the chain's genesis file (the trust anchor for proofs)")
    args = parser.parse_args()
    sys.exit(trio.run(main, args.url, args.key, args.cert, args.password, args.genesis))
