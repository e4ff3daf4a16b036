"""The Python SDK for dApp developers.

    import trio
    from chainnode.client import Account, Client

    async def main():
        account = Account.load("alice.key", password="...")
        async with Client("chainnode://127.0.0.1:20200", key=account, cert="alice.chain") as client:
            receipt = await client.deploy(account, open("counter.py").read(), [0])
            receipt = await client.send(account, receipt.contract_address, "add", [5])
            print(receipt.output)

    trio.run(main)

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.security, chainnode.system
"""

from chainnode.client.account import Account
from chainnode.client.channel import ClientCredentials
from chainnode.client.errors import CallFailed, Forbidden, NodeError, ProofError, ReceiptTimeout, RefusedByNode, TransactionFailed
from chainnode.client.governance import Governance, GovernanceRefused
from chainnode.client.offline import OfflineDevice, OfflineError, Voucher, settle_args, verify_voucher
from chainnode.client.proof import ProvenState, verify_receipt_proof, verify_state_proof
from chainnode.client.receipt import ReceiptInfo
from chainnode.client.rpc import Client
from chainnode.client.subscriptions import BlockNotification, EventNotification, Subscription
from chainnode.protocol.stateproof import contract_state_key, system_state_key

__all__ = [
    "Account", "BlockNotification", "CallFailed", "Client", "ClientCredentials", "EventNotification", "Forbidden", "Governance",
    "GovernanceRefused", "NodeError", "RefusedByNode", "OfflineDevice", "OfflineError", "ProofError", "Voucher", "settle_args", "verify_voucher",
    "ProvenState", "ReceiptInfo", "ReceiptTimeout", "Subscription", "TransactionFailed", "contract_state_key", "system_state_key",
    "verify_receipt_proof", "verify_state_proof",
]
