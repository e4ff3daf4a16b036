"""The device side of dual-offline payments (the `payment` business contract).

A wallet locks part of its balance for a device with the contract's `open_offline(device
public key, amount, expiry_height)`, which returns a purse number. While both phones are
offline, the payer's device signs vouchers that the payee keeps; later, online, anyone
submits them with `settle_offline(payer_wallet, vouchers)`.

    device = OfflineDevice.generate(suite, payer_wallet, payment_contract)
    args = device.open_args(amount=50_00, expiry_height=height + 1000)   # -> send open_offline
    device.load(purse=receipt.output, amount=50_00)                       # the purse number returned
    v = device.pay(payee_wallet, 12_50)                                   # offline: a signed Voucher
    assert verify_voucher(suite, device.public_key, payment_contract, v)  # the payee's device checks it
    send(payment_contract, "settle_offline", settle_args([v, ...]))      # online, later

The signed message (the contract rebuilds it byte for byte):

    b"chainnode/voucher/v1" + contract (20 bytes) + payer wallet (20) + payee wallet (20)
        + purse.to_bytes(8, "big") + amount.to_bytes(8, "big") + counter.to_bytes(8, "big")

Binding the contract, the payer and the purse number means a voucher cannot be replayed
against another contract, another payer's purse or a later purse of the same payer. The
counter is strictly increasing per device; the contract refuses a counter it has already
settled for a different payment and reports it as a double spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from chainnode.crypto import ADDRESS_BYTES, CryptoSuite

VOUCHER_DOMAIN = b"chainnode/voucher/v1"
AMOUNT_MAX = 10**15          # the contract's AMOUNT_MAX (fen)
COUNTER_MAX = 2**63 - 1      # the contract's COUNTER_MAX
VOUCHERS_MAX = 200           # the contract's vouchers per settle_offline call


class OfflineError(ValueError):
    """A voucher the device refuses to sign (bad argument, purse exhausted, not loaded)."""


def _address(value: bytes, what: str) -> bytes:
    if type(value) is not bytes or len(value) != ADDRESS_BYTES:
        raise OfflineError(f"{what} must be a {ADDRESS_BYTES}-byte address")
    return value


def _uint(value: int, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise OfflineError(f"{what} must be an integer from {low} to {high}")
    return value


def voucher_message(contract: bytes, payer: bytes, payee: bytes, purse: int, amount: int, counter: int) -> bytes:
    """The exact bytes a device signs and the contract verifies."""
    _address(contract, "contract")
    _address(payer, "payer")
    _address(payee, "payee")
    _uint(purse, "purse", 1, COUNTER_MAX)
    _uint(amount, "amount", 1, AMOUNT_MAX)
    _uint(counter, "counter", 1, COUNTER_MAX)
    return (VOUCHER_DOMAIN + contract + payer + payee + purse.to_bytes(8, "big")
            + amount.to_bytes(8, "big") + counter.to_bytes(8, "big"))


@dataclass(frozen=True)
class Voucher:
    """One signed offline payment: what the payee's device stores until it is online."""

    payer: bytes
    payee: bytes
    purse: int
    amount: int
    counter: int
    signature: bytes

    def message(self, contract: bytes) -> bytes:
        return voucher_message(contract, self.payer, self.payee, self.purse, self.amount, self.counter)

    def to_arg(self) -> dict:
        """The voucher as `settle_offline` takes it (the payer and purse are implied)."""
        return {"payee": self.payee, "amount": self.amount, "counter": self.counter, "signature": self.signature}


def verify_voucher(suite: CryptoSuite, device_public_key: bytes, contract: bytes, voucher: Voucher) -> bool:
    """What the payee's device checks before accepting a voucher offline (never raises)."""
    try:
        msg = voucher.message(contract)
    except OfflineError:
        return False
    return suite.verify(device_public_key, msg, voucher.signature) is True


def settle_args(vouchers: Iterable[Voucher]) -> list:
    """`[payer_wallet, [voucher dicts]]` for `settle_offline`, sorted by counter.

    All vouchers must come from the same payer and purse; duplicates of one voucher are
    dropped (different vouchers with the same counter are kept: the contract reports the
    second as a double spend)."""
    vs = list(vouchers)
    if not vs:
        raise OfflineError("no vouchers to settle")
    payer, purse = vs[0].payer, vs[0].purse
    if any(v.payer != payer or v.purse != purse for v in vs):
        raise OfflineError("vouchers of different payers or purses are settled in separate calls")
    unique = list(dict.fromkeys(vs))
    if len(unique) > VOUCHERS_MAX:
        raise OfflineError(f"at most {VOUCHERS_MAX} vouchers per settlement; split them")
    unique.sort(key=lambda v: v.counter)
    return [payer, [v.to_arg() for v in unique]]


class OfflineDevice:
    """The payer's device: holds the purse's key, signs vouchers with a rising counter and
    refuses to sign past the amount locked on chain.

    The counter never goes back, across purses too (persist `counter` with the key on a
    real device: a device that forgets it would sign a double spend)."""

    def __init__(self, suite: CryptoSuite, private_key: bytes, public_key: bytes, payer_wallet: bytes,
                 contract_address: bytes, *, counter: int = 0) -> None:
        self.suite = suite
        self.private_key = private_key
        self.public_key = public_key
        self.payer_wallet = _address(payer_wallet, "payer_wallet")
        self.contract_address = _address(contract_address, "contract_address")
        self.counter = _uint(counter, "counter", 0, COUNTER_MAX)
        self.purse: int | None = None
        self.locked = 0
        self.spent = 0

    @classmethod
    def generate(cls, suite: CryptoSuite, payer_wallet: bytes, contract_address: bytes) -> "OfflineDevice":
        """A device with a fresh key pair of the chain's suite."""
        priv, pub = suite.generate_keypair()
        return cls(suite, priv, pub, payer_wallet, contract_address)

    def open_args(self, amount: int, expiry_height: int) -> list:
        """`[device_public_key, amount, expiry_height]` for the contract's `open_offline`."""
        _uint(amount, "amount", 1, AMOUNT_MAX)
        _uint(expiry_height, "expiry_height", 1, COUNTER_MAX)
        return [self.public_key, amount, expiry_height]

    def load(self, purse: int, amount: int) -> None:
        """Record the purse `open_offline` opened (its returned number and the locked amount)."""
        self.purse = _uint(purse, "purse", 1, COUNTER_MAX)
        self.locked = _uint(amount, "amount", 1, AMOUNT_MAX)
        self.spent = 0

    @property
    def remaining(self) -> int:
        return self.locked - self.spent

    def sign_voucher(self, payee: bytes, amount: int, counter: int, purse: int | None = None) -> Voucher:
        """Sign exactly this voucher, without the device's safety checks (counter, balance).

        For tests and recovery tools; payments go through `pay`."""
        purse = self.purse if purse is None else purse
        if purse is None:
            raise OfflineError("the device has no purse loaded; call load() after open_offline")
        msg = voucher_message(self.contract_address, self.payer_wallet, payee, purse, amount, counter)
        return Voucher(self.payer_wallet, payee, purse, amount, counter, self.suite.sign(self.private_key, msg))

    def pay(self, payee: bytes, amount: int) -> Voucher:
        """Sign a voucher for `payee` with the next counter; refuses to go past the lock."""
        if self.purse is None:
            raise OfflineError("the device has no purse loaded; call load() after open_offline")
        _address(payee, "payee")
        if payee == self.payer_wallet:
            raise OfflineError("a wallet cannot pay itself")
        _uint(amount, "amount", 1, AMOUNT_MAX)
        if amount > self.remaining:
            raise OfflineError(f"the purse has only {self.remaining} left of {self.locked}")
        if self.counter >= COUNTER_MAX:
            raise OfflineError("the device's counter is exhausted")
        voucher = self.sign_voucher(payee, amount, self.counter + 1)
        self.counter += 1
        self.spent += amount
        return voucher


__all__ = [
    "OfflineDevice", "OfflineError", "VOUCHER_DOMAIN", "Voucher", "settle_args", "verify_voucher",
    "voucher_message",
]
