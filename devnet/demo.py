"""`devnet demo`: the stories of docs/business-contracts.md, played on a running devnet.

Every devnet deploys the three business contracts in block 0 and registers them in the
name registry ("payment", "supply_chain", "cross_border"); `devnet up` writes their role
accounts to <devnet folder>/accounts/ (central-bank.key, regulator.key,
consortium-admin.key, password "devnet"). Everyone else in a story (banks, wallets, the
fishing boat, customs, ...) is a fresh account the story registers through the contracts'
own methods, so a story can be played again and again on the same chain.

    async with devnet_client(folder, url) as client:         # the devnet's user client certificate
        await payment_story(client, load_roles(folder), say)    # say(text, style=None)

Each story narrates every step (who does what, the amounts, what the chain answered: the
block, the events and their key fields) through `say`, and checks its own outcome: if the
chain does not do what the story says, it raises `StoryFailed` naming the step. So a story
is also a test (tests/integration/test_demos.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import trio

from chainnode.client import Account, Client, ProofError, ReceiptInfo, verify_receipt_proof
from chainnode.client.offline import OfflineDevice, settle_args, verify_voucher
from chainnode.crypto import ADDRESS_BYTES, get_suite
from chainnode.protocol.hexstr import parse_hex, to_hex
from chainnode.protocol.types import CommitCertificate
from chainnode.system.contracts import NAMES_ADDRESS
from devnet.layout import DEVNET_PASSWORD, devnet_client

ACCOUNTS_DIR = "accounts"
ROLE_FILES = {"central_bank": "central-bank.key", "regulator": "regulator.key", "consortium_admin": "consortium-admin.key"}
GAS = 30_000_000  # the default transaction limit; a recall of a whole family stays far below

Say = Callable[..., None]  # say(text, style=None): one line of the narrative


class StoryFailed(RuntimeError):
    """The chain did not do what the story says (or the devnet cannot play it)."""


@dataclass(frozen=True)
class Roles:
    """The role accounts the devnet's genesis named in the contracts' `init`."""

    central_bank: Account      # payment: issuer
    regulator: Account         # regulator of all three
    consortium_admin: Account  # supply_chain and cross_border: admin (and the deployer)


def load_roles(devnet_folder: str | Path) -> Roles:
    """The role accounts from <devnet folder>/accounts/ (password DEVNET_PASSWORD)."""
    folder = Path(devnet_folder) / ACCOUNTS_DIR
    missing = [f for f in ROLE_FILES.values() if not (folder / f).exists()]
    if missing:
        raise StoryFailed(
            f"{folder} has no {', '.join(missing)}: this devnet was created before devnets had the business "
            f"contracts' role accounts; recreate it (`devnet clean --dir {devnet_folder}`, then `devnet up --dir {devnet_folder}`)"
        )
    return Roles(**{role: Account.load(folder / f, DEVNET_PASSWORD) for role, f in ROLE_FILES.items()})


def genesis_sealers(devnet_folder: str | Path) -> list[bytes]:
    """The sealers' consensus keys as the genesis file names them, in order: the trust
    anchor an auditor gets out of band (not from the node it is checking)."""
    doc = json.loads((Path(devnet_folder) / "genesis.json").read_text())
    return [parse_hex(n["consensus_pub"]) for n in doc["nodes"] if n.get("role", "sealer") == "sealer"]


async def resolve(client: Client, name: str) -> bytes:
    """The address the name registry holds for `name` (RPC call to the names system contract)."""
    address = await client.call(NAMES_ADDRESS, "view_resolve", [name])
    if address is None:
        raise StoryFailed(
            f"no contract is registered under {name!r} in the name registry: this devnet's genesis predates the "
            f"business contracts; recreate it (`devnet clean`, then `devnet up`)"
        )
    return address


# ---- formatting ---------------------------------------------------------------------------

UNITS = {"CNY": ("yuan", "fen"), "HKD": ("HKD", "cents"), "MOP": ("MOP", "avos")}


def money(amount: int, currency: str = "CNY") -> str:
    """12.50 yuan (1250 fen), HKD 1,086,956.52 (108695652 cents): the words and the integer."""
    major, minor = UNITS.get(currency, (currency, "minor units"))
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    text = f"{sign}{whole:,}.{cents:02d}"
    text = f"{text} yuan" if currency == "CNY" else f"{major} {text}"
    return f"{text} ({amount} {minor})"


def grams(g: int) -> str:
    return f"{g / 1000:,.0f} kg" if g % 1000 == 0 else f"{g:,} g"


def _h(text: str) -> bytes:
    """The 32-byte hash of an off-chain document (salted: it reveals nothing by itself)."""
    return hashlib.sha256(secrets.token_bytes(16) + text.encode()).digest()


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: what the caller should see."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _Play:
    """One story's stage: the client, the narrator, names for addresses, the steps."""

    def __init__(self, client: Client, say: Say) -> None:
        self.client = client
        self.say = say
        self.names: dict[bytes, str] = {}
        self.chapter = 0
        self.transactions = 0

    def name(self, account_or_address: Account | bytes, label: str) -> bytes:
        address = account_or_address.address if isinstance(account_or_address, Account) else account_or_address
        self.names[address] = label
        return address

    def who(self, address: bytes) -> str:
        return self.names.get(address) or to_hex(address)

    def fmt(self, value: Any) -> str:
        if isinstance(value, bytes):
            if len(value) == ADDRESS_BYTES:
                return self.who(value)
            if not value:
                return "(none)"
            return to_hex(value[:4]) + "…"
        if isinstance(value, str):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(self.fmt(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.fmt(v)}" for k, v in value.items()) + "}"
        return str(value)

    def event_text(self, event, only: tuple[str, ...] | None = None) -> str:
        keys = only or tuple(event.fields)
        return f"{event.name}(" + ", ".join(f"{k}={self.fmt(event.fields[k])}" for k in keys if k in event.fields) + ")"

    # ---- narration ---------------------------------------------------------------------

    def title(self, text: str) -> None:
        self.chapter += 1
        self.say("")
        self.say(f"{self.chapter}. {text}", "bold")

    def tell(self, text: str) -> None:
        self.say(f"   {text}")

    def chain(self, text: str) -> None:
        self.say(f"     -> {text}", "green")

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            raise StoryFailed(message)

    # ---- transactions ------------------------------------------------------------------

    async def _send(self, account: Account, to: bytes, method: str, args: list) -> ReceiptInfo:
        return await self.client.send(account, to, method, args, gas_limit=GAS, check=False)

    def _answered(self, doing: str, receipt: ReceiptInfo, show: dict[str, tuple[str, ...] | None] | None) -> None:
        if not receipt.ok:
            raise StoryFailed(f"step \"{doing}\" failed in block {receipt.block_number}: "
                              f"{receipt.error_type}: {receipt.error_message}")
        self.transactions += 1
        events = [e for e in receipt.events if show is None or e.name in show]
        parts = [self.event_text(e, (show or {}).get(e.name)) for e in events]
        self.chain(f"block {receipt.block_number}: " + ("; ".join(parts) if parts else "ok, no event"))

    async def tx(self, doing: str, account: Account, to: bytes, method: str, args: list, *,
                 show: dict[str, tuple[str, ...] | None] | None = None) -> ReceiptInfo:
        """One step that must succeed; narrates it and the chain's answer."""
        self.tell(doing)
        receipt = await self._send(account, to, method, args)
        self._answered(doing, receipt, show)
        return receipt

    async def txs(self, steps: list[tuple[str, Account, bytes, str, list]], *,
                  show: dict[str, tuple[str, ...] | None] | None = None) -> list[ReceiptInfo]:
        """Independent steps sent at once (they may share a block); returns their receipts
        in the order given."""
        receipts: list[ReceiptInfo | None] = [None] * len(steps)

        async def one(i: int, account: Account, to: bytes, method: str, args: list) -> None:
            receipts[i] = await self._send(account, to, method, args)

        try:
            async with trio.open_nursery() as nursery:
                for i, (_, account, to, method, args) in enumerate(steps):
                    nursery.start_soon(one, i, account, to, method, args)
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None
        # Narrated in the order the chain executed them.
        done = sorted(zip(steps, receipts), key=lambda sr: (sr[1].block_number, sr[1].index))  # type: ignore[union-attr]
        for (doing, *_), receipt in done:
            assert receipt is not None
            self.tell(doing)
            self._answered(doing, receipt, show)
        return receipts  # type: ignore[return-value]

    async def refused(self, doing: str, account: Account, to: bytes, method: str, args: list, *, because: str) -> ReceiptInfo:
        """One step the contract must refuse, with a message containing `because`."""
        self.tell(doing)
        receipt = await self._send(account, to, method, args)
        if receipt.ok:
            raise StoryFailed(f"step \"{doing}\" should have been refused but was accepted in block {receipt.block_number}")
        self.check(because in (receipt.error_message or ""),
                   f"step \"{doing}\" was refused in block {receipt.block_number} for another reason than expected "
                   f"({because!r}): {receipt.error_type}: {receipt.error_message}")
        self.check(not receipt.events, f"the refused step \"{doing}\" emitted events")
        self.say(f"     -> block {receipt.block_number}: REFUSED, nothing changed: \"{receipt.error_message}\"", "red")
        return receipt

    async def view(self, contract: bytes, method: str, *args: Any) -> Any:
        return await self.client.call(contract, method, list(args))

    def event(self, receipt: ReceiptInfo, name: str) -> dict:
        found = [e.fields for e in receipt.events if e.name == name]
        self.check(len(found) == 1, f"expected one {name} event in block {receipt.block_number}, "
                                    f"the chain emitted {[e.name for e in receipt.events]}")
        return found[0]

    def events(self, receipt: ReceiptInfo) -> list[str]:
        return [e.name for e in receipt.events]


async def _suite_name(client: Client) -> str:
    return (await client.group_info())["suite"]


# ---- 1. payment -------------------------------------------------------------------------------

async def payment_story(client: Client, roles: Roles, say: Say, *, contract: bytes | None = None) -> dict:
    """Issuance, exchange, a private small payment, a traced large one, a freeze, a dual
    offline payment with a caught double spend, a retirement, and the books balancing."""
    p = _Play(client, say)
    pay = contract or await resolve(client, "payment")
    suite_name = await _suite_name(client)
    cb, reg = roles.central_bank, roles.regulator
    bank_a, bank_b, alice, bob, tourist, noodles, fruit = (Account.generate(suite_name) for _ in range(7))
    p.name(cb, "the central bank")
    p.name(reg, "the regulator")
    p.name(pay, "payment")
    for acct, label in ((bank_a, "Bank A"), (bank_b, "Bank B"), (alice, "Alice"), (bob, "Bob"),
                        (tourist, "the tourist"), (noodles, "the noodle stall"), (fruit, "the fruit stall")):
        p.name(acct, label)

    say(f"The payment contract is 0x{pay.hex()} (name registry: \"payment\").", "bold")
    roles_on_chain = await p.view(pay, "view_roles")
    p.check(roles_on_chain == {"issuer": cb.address, "regulator": reg.address},
            "the payment contract's issuer and regulator are not accounts/central-bank.key and accounts/regulator.key")
    say(f"Issuer: the central bank 0x{cb.address.hex()}; regulator 0x{reg.address.hex()}. "
        f"Everyone else is a new account made for this run.")
    supply_before = await p.view(pay, "view_total_supply")
    issued = retired = 0

    # -- issuance
    p.title("The central bank admits two commercial banks and issues currency into their reserves")
    await p.txs([
        ("The central bank admits Bank A (Zhoushan Commercial Bank) as an operator", cb, pay, "add_operator", [bank_a.address, "Zhoushan Commercial Bank"]),
        ("The central bank admits Bank B (Ningbo Harbour Bank) as an operator", cb, pay, "add_operator", [bank_b.address, "Ningbo Harbour Bank"]),
    ])
    amount = 100_000_000
    rs = await p.txs([
        (f"The central bank issues {money(amount)} into Bank A's reserve", cb, pay, "issue", [bank_a.address, amount]),
        (f"The central bank issues {money(amount)} into Bank B's reserve", cb, pay, "issue", [bank_b.address, amount]),
    ])
    for r in rs:
        p.check(p.event(r, "Issued")["amount"] == amount, "Issued does not carry the amount issued")
    issued += 2 * amount
    for bank in (bank_a, bank_b):
        p.check(await p.view(pay, "view_reserve_of", bank.address) == amount, f"{p.who(bank.address)}'s reserve is not {amount} fen")
    p.tell("Nothing has reached the public yet: currency in a reserve belongs to the bank.")

    # -- wallets and exchange
    p.title("The banks open wallets for their customers, who buy digital currency")
    kyc_alice = _h("identity file: Alice Wang, ID card 330902...")
    kyc_bob = _h("identity file: Bob Chen, ID card 330203...")
    p.tell("Alice and Bob showed ID: tier 2 wallets; the bank keeps the identity file and puts only its 32-byte hash "
           f"(the KYC commitment) on chain: Alice 0x{kyc_alice[:4].hex()}…, Bob 0x{kyc_bob[:4].hex()}…")
    await p.txs([
        ("Bank A opens a tier 2 wallet for Alice, with her KYC commitment", bank_a, pay, "register_wallet", [alice.address, 2, kyc_alice]),
        ("Bank A opens an anonymous tier 4 wallet for a tourist (phone number only)", bank_a, pay, "register_wallet", [tourist.address, 4, None]),
        ("Bank B opens a tier 2 wallet for Bob, with his KYC commitment", bank_b, pay, "register_wallet", [bob.address, 2, kyc_bob]),
        ("Bank B opens a tier 4 wallet for a noodle stall", bank_b, pay, "register_wallet", [noodles.address, 4, None]),
        ("Bank B opens a tier 4 wallet for a fruit stall", bank_b, pay, "register_wallet", [fruit.address, 4, None]),
    ])
    rs = await p.txs([
        (f"Alice buys {money(20_000_000)}: Bank A moves it from its reserve to her wallet", bank_a, pay, "exchange", [alice.address, 20_000_000]),
        (f"The tourist buys {money(300_000)} at Bank A", bank_a, pay, "exchange", [tourist.address, 300_000]),
        (f"Bob buys {money(100_000)} at Bank B", bank_b, pay, "exchange", [bob.address, 100_000]),
    ])
    p.check(rs[0].output == 20_000_000, "Alice's balance after the exchange is not what she bought")

    # -- small anonymous payment
    p.title("A small payment between two anonymous wallets stays private")
    r = await p.tx(f"The tourist pays the noodle stall {money(1250)} for noodles", tourist, pay, "transfer", [noodles.address, 1250, "noodles"])
    p.check(p.events(r) == ["Transfer"], f"a small payment should emit only Transfer, got {p.events(r)}")
    p.check(set(p.event(r, "Transfer")) == {"frm", "to", "amount", "memo"}, "the Transfer event carries more than addresses, amount and memo")
    p.tell("The chain saw two wallet addresses, the amount and the memo: no name, no KYC commitment (pseudonymous).")

    # -- large traced payment
    p.title("A large payment is traced for the regulator")
    r = await p.tx(f"Alice pays Bob {money(5_000_000)} for a car (the large-amount threshold is 50,000 yuan)",
                   alice, pay, "transfer", [bob.address, 5_000_000, "car, contract 2026-118"])
    large = p.event(r, "LargeTransfer")
    p.check(large["frm_kyc"] == kyc_alice and large["to_kyc"] == kyc_bob, "LargeTransfer does not carry both KYC commitments")
    p.check(large["frm_operator"] == bank_a.address and large["to_operator"] == bank_b.address, "LargeTransfer does not name both banks")
    p.tell("LargeTransfer carries both KYC commitments and both banks: the regulator asks Bank A and Bank B for the files behind them.")

    # -- freeze
    p.title("The regulator freezes a wallet on a court order")
    await p.tx("The regulator freezes Bob's wallet (court order 2026-17)", reg, pay, "freeze", [bob.address, "court order 2026-17"])
    bob_balance = await p.view(pay, "view_balance_of", bob.address)
    await p.refused(f"Alice tries to pay Bob {money(10_000)}", alice, pay, "transfer", [bob.address, 10_000, "rent"],
                    because="the recipient's wallet is frozen by the regulator")
    await p.refused(f"Bob tries to pay Alice {money(10_000)}", bob, pay, "transfer", [alice.address, 10_000, "refund"],
                    because="your wallet is frozen by the regulator")
    p.check(await p.view(pay, "view_balance_of", bob.address) == bob_balance, "Bob's frozen balance changed")
    p.tell(f"Bob's balance stays {money(bob_balance)} until the regulator unfreezes it.")

    # -- dual offline
    p.title("Offline, twice: the tourist pays at a market with no signal")
    lock = 100_000
    device = OfflineDevice.generate(get_suite(suite_name), tourist.address, pay)
    height = await client.block_number()
    r = await p.tx(f"Before leaving, the tourist's wallet locks {money(lock)} for the phone until block {height + 1000}",
                   tourist, pay, "open_offline", device.open_args(lock, height + 1000),
                   show={"OfflineOpened": ("wallet", "purse", "amount", "expiry_height")})
    purse = r.output
    device.load(purse, lock)
    p.tell(f"The contract answered purse number {purse}; the phone will sign it into every voucher.")
    p.tell("At the market, both phones are offline:")
    v1 = device.pay(noodles.address, 30_000)
    v2 = device.pay(noodles.address, 15_000)
    for v, what in ((v1, "dinner"), (v2, "tea")):
        p.check(verify_voucher(device.suite, device.public_key, pay, v), "the stall's phone could not verify a voucher")
        p.tell(f"  the tourist's phone signs voucher #{v.counter}: pay the noodle stall {money(v.amount)} ({what}); "
               f"the stall's phone checks the signature: valid, kept")
    p.tell("Back online, the noodle stall settles its two vouchers:")
    r = await p.tx("The noodle stall calls settle_offline with vouchers #1 and #2", noodles, pay, "settle_offline", settle_args([v1, v2]),
                   show={"OfflinePayment": ("payer", "counter", "payee", "amount")})
    p.check(p.events(r) == ["OfflinePayment", "OfflinePayment"], f"expected two OfflinePayment events, got {p.events(r)}")
    p.check(r.output["paid_amount"] == v1.amount + v2.amount, f"the settlement paid {r.output['paid_amount']} fen, not {v1.amount + v2.amount}")
    p.tell(f"Paid {money(r.output['paid_amount'])}; {money(r.output['left'])} left in the purse.")
    p.tell("Now suppose the tourist's phone was tampered with: it signs voucher #1 again, to the fruit stall, "
           f"for {money(30_000)}, and a voucher #3 for {money(60_000)}, more than is left in the purse.")
    reused = device.sign_voucher(fruit.address, 30_000, v1.counter)
    beyond = device.sign_voucher(fruit.address, 60_000, v2.counter + 1)
    p.check(all(verify_voucher(device.suite, device.public_key, pay, v) for v in (reused, beyond)),
            "the tampered vouchers should look valid to an offline phone")
    p.tell("Offline, the fruit stall's phone cannot tell: the signatures are the device's own.")
    fruit_before = await p.view(pay, "view_balance_of", fruit.address)
    r = await p.tx("The fruit stall settles them", fruit, pay, "settle_offline", settle_args([reused, beyond]),
                   show={"OfflineDoubleSpend": ("payer", "purse", "counter", "payee", "amount", "reason")})
    spends = [e.fields for e in r.receipt.events if e.name == "OfflineDoubleSpend"]
    p.check(p.events(r) == ["OfflineDoubleSpend", "OfflineDoubleSpend"], f"expected two OfflineDoubleSpend events, got {p.events(r)}")
    p.check(spends[0]["counter"] == v1.counter and "counter reused" in spends[0]["reason"], "the reused counter was not reported as such")
    p.check("exceeds the locked amount" in spends[1]["reason"], "the voucher beyond the lock was not reported as such")
    p.check(r.output["paid"] == 0 and await p.view(pay, "view_balance_of", fruit.address) == fruit_before,
            "a double-spent voucher was paid")
    p.tell(f"Double spend detected: counter {spends[0]['counter']} of purse {purse} was already paid to the noodle stall, "
           f"and voucher #{spends[1]['counter']} goes beyond the lock. Nothing paid; the events are Bank A's evidence.")

    # -- retire
    p.title("A bank returns currency to the central bank")
    amount = 20_000_000
    r = await p.tx(f"Bank B retires {money(amount)} of its reserve; the central bank destroys it", bank_b, pay, "retire", [amount])
    p.check(p.event(r, "Retired")["amount"] == amount, "Retired does not carry the amount")
    retired += amount

    # -- the books
    p.title("The books balance")
    supply = await p.view(pay, "view_total_supply")
    reserves = [await p.view(pay, "view_reserve_of", b.address) for b in (bank_a, bank_b)]
    balances = [await p.view(pay, "view_balance_of", w.address) for w in (alice, bob, tourist, noodles, fruit)]
    purse_info = await p.view(pay, "view_offline_info", tourist.address)
    locked_left = purse_info["left"] if purse_info else 0
    held = sum(reserves) + sum(balances) + locked_left
    p.tell(f"Issued in this story {money(issued)}, retired {money(retired)}: {money(issued - retired)} should exist.")
    p.tell(f"Held: bank reserves {money(sum(reserves))} + wallets {money(sum(balances))} + still locked offline "
           f"{money(locked_left)} = {money(held)}")
    p.check(held == issued - retired, f"the story's reserves, wallets and purse hold {held} fen, not issued - retired = {issued - retired}")
    p.check(supply - supply_before == issued - retired,
            f"view_total_supply moved by {supply - supply_before} fen during the story, not by issued - retired = {issued - retired}")
    earlier = f"{money(supply_before)} from earlier runs + " if supply_before else ""
    say("")
    say(f"Supply invariant holds: total supply {money(supply)} = {earlier}issued {money(issued)} - retired {money(retired)}. "
        f"{p.transactions} transactions.", "bold green")
    return {"supply": supply, "issued": issued, "retired": retired, "transactions": p.transactions}


# ---- 2. supply chain ------------------------------------------------------------------------------

HISTORY_WORDS = {
    "created": "created", "handed_over": "handed over", "received": "received", "record": "record",
    "split": "split", "split_from": "split from", "recalled": "RECALLED", "hand_over_cancelled": "hand-over cancelled",
}


async def supply_chain_story(client: Client, roles: Roles, say: Say, *, contract: bytes | None = None) -> dict:
    """A batch of fish from the boat to the shop, inspected and split on the way, then
    recalled with everything split from it."""
    p = _Play(client, say)
    sc = contract or await resolve(client, "supply_chain")
    suite_name = await _suite_name(client)
    admin = roles.consortium_admin
    boat, plant, lab, truck, market = (Account.generate(suite_name) for _ in range(5))
    p.name(admin, "the consortium admin")
    p.name(roles.regulator, "the regulator")
    cast = ((boat, "producer", "Haiyu 7 (fishing boat)"), (plant, "processor", "Zhoushan cold plant"),
            (lab, "inspector", "Zhoushan food lab"), (truck, "logistics", "Coldway cold-chain truck"),
            (market, "retailer", "Hangzhou Fresh Market"))
    for acct, _, label in cast:
        p.name(acct, label.split(" (")[0])
    say(f"The supply_chain contract is 0x{sc.hex()} (name registry: \"supply_chain\").", "bold")

    code = f"FISH-{secrets.token_hex(2).upper()}"
    code_a, code_b = f"{code}-A", f"{code}-B"
    total = 1_000_000  # grams

    p.title("The consortium admin registers the participants")
    await p.txs([(f"The admin registers {label} as {role}", admin, sc, "register_participant", [acct.address, role, label])
                 for acct, role, label in cast],
                show={"ParticipantRegistered": ("participant", "role")})

    p.title("From the boat")
    r = await p.tx(f"Haiyu 7 lands {grams(total)} of yellow croaker and registers batch {code} with the hash of its catch log",
                   boat, sc, "create_batch", [code, "yellow croaker", "East China Sea, fishing area 61", total, _h("catch log")],
                   show={"BatchCreated": ("code", "product", "quantity", "producer")})
    p.check(p.event(r, "BatchCreated")["quantity"] == total, "BatchCreated does not carry the quantity")
    await p.tx(f"At Shenjiamen dock, Haiyu 7 hands {code} to the Zhoushan cold plant", boat, sc, "hand_over",
               [code, plant.address, "Shenjiamen dock", _h("delivery note")], show={"HandedOver": ("code", "frm", "to", "location")})
    status = await p.view(sc, "view_status", code)
    p.check(status == "in_transit", f"{code} should be in transit until received, is {status}")
    p.tell(f"Until the plant confirms, {code} is {status}: the boat is still responsible for it.")
    await p.tx(f"The plant confirms it received {code}", plant, sc, "receive", [code])
    p.check(await p.view(sc, "view_holder", code) == plant.address, f"the plant does not hold {code}")

    p.title("Inspected")
    await p.tx(f"The food lab tests a sample and attaches the hash of its report to {code}", lab, sc, "add_record",
               [code, "inspection", _h("lab report 2026-4471: histamine 12 mg/kg, pass")],
               show={"RecordAdded": ("code", "kind", "data_hash", "by")})

    p.title("Split for the shops")
    q_a, q_b = 600_000, 400_000
    r = await p.tx(f"The plant packs {code} into {code_a} ({grams(q_a)}, for a supermarket) and {code_b} ({grams(q_b)}, for the market)",
                   plant, sc, "split", [code, [code_a, code_b], [q_a, q_b]])
    p.check(await p.view(sc, "view_status", code) == "split", f"{code} should show as split")
    await p.tx(f"The plant hands {code_b} to the cold-chain truck", plant, sc, "hand_over",
               [code_b, truck.address, "Zhoushan cold plant, gate 2", None], show={"HandedOver": ("code", "frm", "to", "location")})
    await p.tx(f"The truck receives {code_b}", truck, sc, "receive", [code_b])
    await p.tx(f"The truck hands {code_b} to Hangzhou Fresh Market", truck, sc, "hand_over",
               [code_b, market.address, "Hangzhou Fresh Market, loading bay", _h("cold-chain temperature log")],
               show={"HandedOver": ("code", "frm", "to", "location")})
    await p.tx(f"The market receives {code_b} and puts it on the shelf", market, sc, "receive", [code_b])
    p.check(await p.view(sc, "view_holder", code_b) == market.address, f"the market does not hold {code_b}")

    p.title("Recall")
    p.tell("A week later the lab finds histamine above the limit in a retained sample.")
    r = await p.tx(f"Haiyu 7, the producer, recalls {code}", boat, sc, "recall", [code, "histamine above limit in a retained sample"],
                   show={"Recalled": ("code", "origin")})
    recalled = r.output
    p.check(sorted(recalled) == sorted([code, code_a, code_b]), f"the recall marked {recalled}, not {code} and both split batches")
    p.check(p.events(r) == ["Recalled"] * 3, f"expected three Recalled events, got {p.events(r)}")
    for c in (code, code_a, code_b):
        status = await p.view(sc, "view_status", c)
        p.check(status == "recalled", f"{c} is {status} after the recall")
    p.tell(f"One transaction recalled {', '.join(recalled)}: every shop's system reacts to its Recalled event.")
    await p.refused(f"The market tries to hand {code_b} back to the truck", market, sc, "hand_over",
                    [code_b, truck.address, "Hangzhou Fresh Market", None], because="has been recalled")

    p.title(f"What a customer scanning {code_b} sees (view_history)")
    history = await p.view(sc, "view_history", code_b)
    for e in history:
        kind = e["kind"]
        extra = ""
        if kind == "created":
            extra = f"{e['product']} from {e['origin']}, {grams(e['quantity'])}"
        elif kind == "handed_over":
            extra = f"to {p.who(e['to'])} at {e['location']}"
        elif kind == "received":
            extra = f"from {p.who(e['frm'])}"
        elif kind == "record":
            extra = f"{e['record']} report 0x{e['data_hash'][:4].hex()}…"
        elif kind == "split":
            extra = "into " + ", ".join(f"{c} ({grams(q)})" for c, q in zip(e["into"], e["quantities"]))
        elif kind == "split_from":
            extra = f"{e['parent']}, {grams(e['quantity'])}"
        elif kind == "recalled":
            extra = f"{e['reason']} (recall of {e['origin']})"
        p.tell(f"  block {e['height']:>4}  {e['batch']:<12} {HISTORY_WORDS.get(kind, kind):<13} by {p.who(e['by'])}: {extra}")
    kinds = [(e["batch"], e["kind"]) for e in history]
    expected = [(code, "created"), (code, "handed_over"), (code, "received"), (code, "record"), (code, "split"),
                (code_b, "split_from"), (code_b, "handed_over"), (code_b, "received"), (code_b, "handed_over"),
                (code_b, "received"), (code_b, "recalled")]
    p.check(kinds == expected, f"view_history({code_b}) is {kinds}, expected {expected}")
    say("")
    say(f"{code_b}'s history starts on the boat: {len(history)} steps, {sum(1 for b, _ in kinds if b == code)} of them "
        f"its parent {code}'s. {p.transactions} transactions.", "bold green")
    return {"code": code, "recalled": recalled, "history": len(history), "transactions": p.transactions}


# ---- 3. cross-border ---------------------------------------------------------------------------------

FX_SCALE = 1_000_000


async def cross_border_story(client: Client, roles: Roles, say: Say, *, contract: bytes | None = None,
                             sealer_pubs: list[bytes] | None = None) -> dict:
    """A Hong Kong-mainland trade declared by customs, matched by a bank payment in HKD,
    settled; an over-payment refused; the settlement's receipt proven offline.

    `sealer_pubs`: the trust anchor for the proof (e.g. `genesis_sealers(folder)`); by
    default the sealer list the node reports."""
    p = _Play(client, say)
    xb = contract or await resolve(client, "cross_border")
    suite_name = await _suite_name(client)
    admin = roles.consortium_admin
    customs, cn_bank, hk_bank = (Account.generate(suite_name) for _ in range(3))
    p.name(admin, "the consortium admin")
    p.name(customs, "Shenzhen Customs")
    p.name(cn_bank, "Bank of Shenzhen")
    p.name(hk_bank, "Harbour Bank (HK)")
    say(f"The cross_border contract is 0x{xb.hex()} (name registry: \"cross_border\").", "bold")
    tag = secrets.token_hex(2).upper()
    trade, pay1, pay2 = f"T-{tag}", f"P-{tag}-1", f"P-{tag}-2"
    tolerance = await p.view(xb, "view_tolerance_bp")

    p.title("The consortium admin registers the institutions")
    await p.txs([
        ("The admin registers Shenzhen Customs (CN, customs)", admin, xb, "register_institution", [customs.address, "Shenzhen Customs", "CN", "customs"]),
        ("The admin registers Bank of Shenzhen (CN, bank)", admin, xb, "register_institution", [cn_bank.address, "Bank of Shenzhen", "CN", "bank"]),
        ("The admin registers Harbour Bank (HK, bank)", admin, xb, "register_institution", [hk_bank.address, "Harbour Bank", "HK", "bank"]),
    ], show={"InstitutionRegistered": ("institution", "jurisdiction", "role")})
    quota = 200_000_000
    await p.tx(f"The admin gives Bank of Shenzhen a quota of {money(quota, 'HKD')}", admin, xb, "set_quota", [cn_bank.address, "HKD", quota])

    p.title("The declaration (the information flow)")
    declared = 100_000_000
    r = await p.tx(f"Shenzhen Customs declares trade {trade}: a Hong Kong seafood exporter sells to a Shenzhen importer for {money(declared)}",
                   customs, xb, "declare_trade", [trade, "Victoria Seafood Export Ltd (HK)", "Shenzhen Haixian Import Co.", "CNY", declared, _h("declaration documents")],
                   show={"TradeDeclared": ("ref", "currency", "amount", "customs", "jurisdiction")})
    p.check(p.event(r, "TradeDeclared")["amount"] == declared, "TradeDeclared does not carry the declared amount")

    p.title("The matching payment (the capital flow)")
    rate = 920_000  # 1 HKD = 0.92 CNY, times 10^6
    amount = 108_695_652
    expected = (amount * rate + FX_SCALE // 2) // FX_SCALE
    p.tell(f"The importer's bank pays {money(amount, 'HKD')} at 1 HKD = 0.92 CNY (fx_rate {rate}), which is {money(expected)}.")
    r = await p.tx(f"Bank of Shenzhen submits payment {pay1} against {trade} to Harbour Bank", cn_bank, xb, "submit_payment",
                   [pay1, trade, cn_bank.address, hk_bank.address, "HKD", amount, rate, "seafood, invoice 88"],
                   show={"PaymentSubmitted": ("ref", "trade_ref", "payer_bank", "payee_bank", "currency", "amount", "fx_rate", "converted")})
    p.check(r.output == expected, f"the contract converted to {r.output} fen, not {expected}")
    settled = await p.tx(f"Harbour Bank receives the funds and settles {pay1}", hk_bank, xb, "settle", [pay1])
    p.event(settled, "PaymentSettled")
    t = await p.view(xb, "view_trade", trade)
    p.check(t["matched"] is True and t["settled"] == expected, f"trade {trade} is not matched after the settlement: {t}")
    p.tell(f"view_trade({trade}): declared {money(t['amount'])}, settled {money(t['settled'])}, matched: {t['matched']}: "
           f"the money that crossed the border matches what customs saw crossing it.")

    p.title("An over-payment is refused")
    extra = 2_000_000
    p.tell(f"The next month the bank tries to send another {money(extra, 'HKD')} (= {money((extra * rate + FX_SCALE // 2) // FX_SCALE)}) "
           f"against {trade}; the tolerance is {tolerance / 100:g} %.")
    await p.refused(f"Bank of Shenzhen submits payment {pay2} against {trade}", cn_bank, xb, "submit_payment",
                    [pay2, trade, cn_bank.address, hk_bank.address, "HKD", extra, rate, "seafood, invoice 93"],
                    because=f"payments against trade {trade} would total")
    quota_left = (await p.view(xb, "view_quota_of", cn_bank.address))["HKD"]["remaining"]
    p.check(quota_left == quota - amount, f"the refused payment used quota: {quota_left} left")
    p.tell(f"Nothing recorded except the failed receipt; the bank's HKD quota still has {money(quota_left, 'HKD')} left.")

    p.title("The proof: Harbour Bank's auditor checks the settlement without trusting the node")
    answer = await client.request("getTransactionReceipt", to_hex(settled.tx_hash), True)
    p.check(isinstance(answer, dict) and isinstance(answer.get("receiptProof"), dict), "the node returned no receipt proof")
    source = "the genesis file" if sealer_pubs is not None else "the node's sealer list"
    sealers = list(sealer_pubs) if sealer_pubs is not None else await client.sealer_pubs()
    p.tell(f"The auditor fetches the receipt of the settle transaction 0x{settled.tx_hash.hex()[:16]}… with its proof "
           f"(getTransactionReceipt, requireProof=true), and checks it offline against the {len(sealers)} sealer keys from {source}.")
    suite = await client.suite()
    try:
        proven = verify_receipt_proof(answer, sealers, suite, tx_hash=settled.tx_hash)
    except ProofError as exc:
        raise StoryFailed(f"the receipt proof of the settlement does not verify: {exc}") from None
    cert = CommitCertificate.decode(parse_hex(answer["receiptProof"]["certificate"]["raw"]))
    proven_event = [e for e in proven.events if e.name == "PaymentSettled"]
    p.check(proven.ok and proven.block_number == settled.block_number and len(proven_event) == 1
            and proven_event[0].fields["ref"] == pay1, "the proven receipt is not the settlement's")
    p.chain(f"block {proven.block_number}: the commit certificate carries {len(cert.signatures)} of {len(sealers)} sealers' "
            f"signatures; the header hashes to the certified hash; a Merkle proof puts the receipt in its receipt root")
    p.chain(f"proven receipt: {p.event_text(proven_event[0], ('ref', 'trade_ref', 'payee_bank', 'currency', 'amount'))}")
    say("")
    say(f"Settlement of {pay1} verified offline against {len(cert.signatures)} sealers' signatures "
        f"(a quorum of the {len(sealers)} sealers; block {proven.block_number}). {p.transactions} transactions.", "bold green")
    return {"trade": trade, "payment": pay1, "block": proven.block_number, "sealers": len(sealers),
            "signatures": len(cert.signatures), "transactions": p.transactions}


# ---- the command's entry point -----------------------------------------------------------------

STORIES: dict[str, tuple[str, Callable[..., Awaitable[dict]]]] = {
    "payment": ("payment", payment_story),
    "supply-chain": ("supply_chain", supply_chain_story),
    "cross-border": ("cross_border", cross_border_story),
}


async def run_story(story: str, url: str, devnet_folder: str | Path, say: Say) -> dict:
    """Play `story` (a key of STORIES) against the node at `url` of the devnet in
    `devnet_folder`: its channel port (connecting with the devnet's user client
    certificate), or its HTTP port."""
    name, fn = STORIES[story]
    roles = load_roles(devnet_folder)
    async with devnet_client(Path(devnet_folder), url, timeout_s=30) as client:
        contract = await resolve(client, name)
        kwargs: dict[str, Any] = {"contract": contract}
        if story == "cross-border":
            kwargs["sealer_pubs"] = genesis_sealers(devnet_folder)
        return await fn(client, roles, say, **kwargs)


__all__ = [
    "Roles", "STORIES", "StoryFailed", "cross_border_story", "genesis_sealers", "load_roles", "money",
    "payment_story", "resolve", "run_story", "supply_chain_story",
]
