"""The Python SDK for dApp developers.

    import trio
    from chainnode.client import Account, Client

    async def main():
        account = Account.load("alice.key", password="...")
        async with Client("http://127.0.0.1:8545") as client:
            receipt = await client.deploy(account, open("counter.py").read(), [0])
            receipt = await client.send(account, receipt.contract_address, "add", [5])
            print(receipt.output)

    trio.run(main)

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.security, chainnode.system
"""

from chainnode.client.account import Account
from chainnode.client.errors import CallFailed, NodeError, ProofError, ReceiptTimeout, TransactionFailed
from chainnode.client.governance import Governance, GovernanceRefused
from chainnode.client.offline import OfflineDevice, OfflineError, Voucher, settle_args, verify_voucher
from chainnode.client.proof import verify_receipt_proof
from chainnode.client.receipt import ReceiptInfo
from chainnode.client.rpc import Client
from chainnode.client.subscriptions import BlockNotification, EventNotification, Subscription

__all__ = [
    "Account", "BlockNotification", "CallFailed", "Client", "EventNotification", "Governance", "GovernanceRefused",
    "NodeError", "OfflineDevice", "OfflineError", "ProofError", "Voucher", "settle_args", "verify_voucher",
    "ReceiptInfo", "ReceiptTimeout", "Subscription", "TransactionFailed", "verify_receipt_proof",
]
