"""Governance from the SDK: the committee's proposals and votes, permissions and the name
registry, through the system contracts (chainnode/system/contracts.py, docs/governance.md).

    from chainnode.client import Account, Client, Governance

    async with Client("chainnode://127.0.0.1:20200", key=app, cert="app.chain") as client:
        gov = Governance(client)
        pid, receipt = await gov.propose(governor, "set_config", ["tx_count_limit", 500])
        print((await gov.proposal(pid))["status"])          # "executed" with one governor
        await gov.vote(other_governor, pid, True)             # with several

Writes are signed transactions to the system contracts; reads run their `view_` methods
read-only on the head state (RPC `call`), so values come back exactly: addresses, public
keys and serials are `bytes`. A transaction the system contract refuses raises
`GovernanceRefused` (a `TransactionFailed`) whose message is the contract's own reason, e.g.
"0x… is not a governor; only committee members may propose or vote".
"""

from __future__ import annotations

from typing import Any

from chainnode.client.account import Account
from chainnode.client.errors import CallFailed, TransactionFailed
from chainnode.client.receipt import ReceiptInfo
from chainnode.client.rpc import Client
from chainnode.crypto import ADDRESS_BYTES
from chainnode.protocol.hexstr import parse_hex
from chainnode.system.addresses import COMMITTEE_ADDRESS, CONFIG_ADDRESS, CONSENSUS_ADDRESS, NAMES_ADDRESS, PERMISSION_ADDRESS  # noqa: F401

PROPOSALS_PAGE_MAX = 100  # view_proposals returns at most this many at a time


class GovernanceRefused(TransactionFailed):
    """A governance transaction was committed but the system contract refused it: `.reason`
    is its message (what was wrong and what to do), `.receipt` the failed receipt."""

    def __init__(self, action: str, receipt: ReceiptInfo) -> None:
        super().__init__(receipt)
        self.action = action
        self.reason = receipt.error_message or receipt.error_type
        self.args = (f"{action} refused in block {receipt.block_number}: {self.reason}",)


def _address(value: Any, what: str) -> bytes:
    """An address as bytes; "0x…" hex text is accepted too."""
    if isinstance(value, str):
        value = parse_hex(value, what=f"{what} {value!r}")
    if not isinstance(value, (bytes, bytearray)) or len(value) != ADDRESS_BYTES:
        raise ValueError(f"{what} must be a {ADDRESS_BYTES}-byte address")
    return bytes(value)


class Governance:
    """The committee, permissions and names of the chain `client` talks to."""

    def __init__(self, client: Client, *, timeout_s: float = 30.0) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def _send(self, account: Account, to: bytes, method: str, args: list, action: str) -> ReceiptInfo:
        receipt = await self.client.send(account, to, method, args, timeout_s=self.timeout_s, check=False)
        if not receipt.ok:
            raise GovernanceRefused(action, receipt)
        return receipt

    # ---- the committee's proposals -------------------------------------------------------

    async def propose(self, account: Account, kind: str, params: list, expiry_blocks: int | None = None) -> tuple[int, ReceiptInfo]:
        """Propose `kind` with `params` (plain values: addresses and keys as bytes); the
        proposer's own yes vote is counted at once, so with a single governor (admin mode)
        it executes in this very transaction. Returns (proposal id, receipt); the proposal's
        status is then `(await gov.proposal(id))["status"]`. Raises `GovernanceRefused`
        (not a governor, unknown kind, a value out of range, ...)."""
        args: list[Any] = [kind, list(params)]
        if expiry_blocks is not None:
            args.append(expiry_blocks)
        receipt = await self._send(account, COMMITTEE_ADDRESS, "propose", args, f"propose {kind}")
        return receipt.output, receipt

    async def vote(self, account: Account, proposal_id: int, yes: bool) -> ReceiptInfo:
        """Vote on an open proposal; `receipt.output` is its status after the vote: "open",
        "executed", "failed" (it passed but could not be applied: see `proposal(id)["result"]`)
        or "rejected"."""
        return await self._send(account, COMMITTEE_ADDRESS, "vote", [proposal_id, bool(yes)], f"vote on proposal {proposal_id}")

    async def revoke(self, account: Account, proposal_id: int) -> ReceiptInfo:
        """Withdraw an open proposal (its proposer only)."""
        return await self._send(account, COMMITTEE_ADDRESS, "revoke", [proposal_id], f"revoke proposal {proposal_id}")

    async def proposal(self, proposal_id: int) -> dict | None:
        """A proposal as the chain describes it (id, kind, params, proposer, status, result,
        votes, total/voted/yes weight, expiry_height, ...), or None if there is no such id."""
        try:
            return await self.client.call(COMMITTEE_ADDRESS, "view_proposal", [proposal_id])
        except CallFailed as exc:
            if exc.error_message.startswith("no proposal"):
                return None
            raise

    async def proposals(self, first: int = 1, count: int = 50) -> list[dict]:
        """Proposals with ids first .. first + count - 1 (those that exist), in id order."""
        out: list[dict] = []
        while count > 0:
            page = min(count, PROPOSALS_PAGE_MAX)
            got = await self.client.call(COMMITTEE_ADDRESS, "view_proposals", [first, page])
            out.extend(got)
            if len(got) < page:
                break
            first, count = first + page, count - page
        return out

    async def committee(self) -> dict:
        """{"governors": [{"address", "weight"}], "participation_pct", "win_pct", "next_proposal_id"}."""
        return await self.client.call(COMMITTEE_ADDRESS, "view_committee", [])

    async def kinds(self) -> dict[str, str]:
        """The proposal kinds the node knows, with their parameters."""
        return await self.client.call(COMMITTEE_ADDRESS, "view_kinds", [])

    # ---- membership, config ----------------------------------------------------------------

    async def nodes(self) -> dict:
        """{"nodes": [{"consensus_pub", "peer_id", "role", "weight", "addrs"}], "pending":
        [{"from_height", "nodes": [...]}]}: the membership in force and changes not yet in force."""
        return await self.client.call(CONSENSUS_ADDRESS, "view_nodes", [])

    async def config(self) -> dict[str, int]:
        """Every system config value at the head."""
        return await self.client.call(CONFIG_ADDRESS, "view_config", [])

    # ---- permissions --------------------------------------------------------------------------

    async def account_status(self, address: bytes | str) -> dict:
        """{"frozen", "frozen_reason", "may_deploy", "admin_of_contract"} of an account or contract."""
        return await self.client.call(PERMISSION_ADDRESS, "view_account", [_address(address, "address")])

    async def permissions(self) -> dict:
        """{"deploy_open", "revoked"}: "revoked" holds the revocation ids of the revoked certificates."""
        return await self.client.call(PERMISSION_ADDRESS, "view_permissions", [])

    async def method_acl(self, contract: bytes | str, method: str) -> dict | None:
        """{"mode": "allow"|"deny", "addresses": [...]} for a contract method, or None (open to all)."""
        return await self.client.call(PERMISSION_ADDRESS, "view_method_acl", [_address(contract, "contract"), method])

    async def set_method_acl(self, account: Account, contract: bytes | str, method: str, mode: str, addresses: list) -> ReceiptInfo:
        """As the contract's admin (its deployer): who may call `method`. mode "allow": only
        `addresses`; "deny": everyone but them. Others must propose `set_method_acl`."""
        addrs = [_address(a, "ACL entry") for a in addresses]
        return await self._send(account, PERMISSION_ADDRESS, "set_method_acl", [_address(contract, "contract"), method, mode, addrs], f"set_method_acl {method}")

    async def clear_method_acl(self, account: Account, contract: bytes | str, method: str) -> ReceiptInfo:
        """As the contract's admin: anyone may call `method` again."""
        return await self._send(account, PERMISSION_ADDRESS, "clear_method_acl", [_address(contract, "contract"), method], f"clear_method_acl {method}")

    # ---- names ----------------------------------------------------------------------------------

    async def resolve(self, name: str) -> bytes | None:
        """The address registered under `name`, or None."""
        return await self.client.call(NAMES_ADDRESS, "view_resolve", [name])

    async def names(self) -> dict[str, bytes]:
        """The whole name registry."""
        return await self.client.call(NAMES_ADDRESS, "view_names", [])
