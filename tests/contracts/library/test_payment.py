"""The payment contract through the real engine: roles, limits, freeze, supply, offline."""

from __future__ import annotations

import pytest

from chainnode.client.offline import OfflineDevice
from contracts.library import source
from tests.contracts.library.harness import DAY_MS, GAS, Chain, addr, event, names

DEPLOYER = addr(0x01)
ISSUER = addr(0x1C)
REG = addr(0x2E)
BANK_A = addr(0xBA)
BANK_B = addr(0xBB)
BANK_C = addr(0xBC)
ALICE = addr(0xA1)     # tier 2 at bank A
ANON = addr(0xA4)      # tier 4 at bank A
BOB = addr(0xB2)       # tier 2 at bank B
CAROL = addr(0xC3)     # tier 3 at bank B
DAVE = addr(0xD4)      # tier 4 at bank B
STRANGER = addr(0x99)  # not registered anywhere
KYC = {ALICE: b"\x11" * 32, BOB: b"\x22" * 32, CAROL: b"\x33" * 32}
WALLETS = (ALICE, ANON, BOB, CAROL, DAVE)
OPERATORS = (BANK_A, BANK_B)
YUAN = 100


def make(suite: str = "sm"):
    chain = Chain(suite)
    pay = chain.deploy("payment", ISSUER, REG, sender=DEPLOYER)
    pay.ok(ISSUER, "add_operator", BANK_A, "Bank A")
    pay.ok(ISSUER, "add_operator", BANK_B, "Bank B")
    pay.ok(BANK_A, "register_wallet", ALICE, 2, KYC[ALICE])
    pay.ok(BANK_A, "register_wallet", ANON, 4, None)
    pay.ok(BANK_B, "register_wallet", BOB, 2, KYC[BOB])
    pay.ok(BANK_B, "register_wallet", CAROL, 3, KYC[CAROL])
    pay.ok(BANK_B, "register_wallet", DAVE, 4, b"")
    pay.ok(ISSUER, "issue", BANK_A, 10_000_000 * YUAN)
    pay.ok(ISSUER, "issue", BANK_B, 10_000_000 * YUAN)
    pay.ok(BANK_A, "exchange", ALICE, 200_000 * YUAN)
    pay.ok(BANK_A, "exchange", ANON, 5_000 * YUAN)
    pay.ok(BANK_B, "exchange", BOB, 100_000 * YUAN)
    pay.ok(BANK_B, "exchange", CAROL, 10_000 * YUAN)
    pay.ok(BANK_B, "exchange", DAVE, 1_000 * YUAN)
    return chain, pay


@pytest.fixture
def world():
    return make("sm")


def balance(pay, who):
    return pay.view("view_balance_of", who)


def total(pay, wallets=WALLETS, operators=OPERATORS):
    """Every balance + reserve + unspent offline lock: must equal the total supply."""
    s = sum(pay.view("view_balance_of", w) for w in wallets)
    s += sum(pay.view("view_reserve_of", o) for o in operators)
    for w in wallets:
        info = pay.view("view_offline_info", w)
        if info is not None:
            s += info["left"]
    return s


# ---- deployment and roles -------------------------------------------------------------------

def test_init_sets_roles_defaults_and_emits(world) -> None:
    chain, pay = world
    assert pay.view("view_roles") == {"issuer": ISSUER, "regulator": REG}
    assert names(pay.deployed)[0] == "PaymentSystemCreated"
    assert names(pay.deployed).count("TierLimitsSet") == 4
    assert pay.view("view_large_threshold") == 50_000 * YUAN
    limits = [pay.view("view_tier_limits", t) for t in (1, 2, 3, 4)]
    assert limits[3] == {"tier": 4, "balance_max": 10_000 * YUAN, "payment_max": 2_000 * YUAN, "daily_max": 5_000 * YUAN}
    # tier 4 is the smallest on every limit
    for key in ("balance_max", "payment_max", "daily_max"):
        assert limits[3][key] == min(lim[key] for lim in limits)
    assert pay.view("view_total_supply") == 20_000_000 * YUAN == total(pay)


def test_init_defaults_to_the_deployer_and_checks_addresses() -> None:
    chain = Chain("sm")
    pay = chain.deploy("payment", None, None, sender=DEPLOYER)
    assert pay.view("view_roles") == {"issuer": DEPLOYER, "regulator": DEPLOYER}
    pay2 = chain.deploy("payment", sender=DEPLOYER)
    assert pay2.view("view_roles") == {"issuer": DEPLOYER, "regulator": DEPLOYER}
    bad = chain.engine.deploy(chain.store, chain.ctx(DEPLOYER), source("payment"), [b"short", None], GAS, b"bad")
    assert not bad.ok and "issuer must be a 20-byte address" in bad.error_message


def test_operator_management(world) -> None:
    chain, pay = world
    pay.fails(BANK_A, "add_operator", BANK_C, "Bank C", match="only the issuer")
    pay.fails(ISSUER, "add_operator", BANK_A, "Bank A", match="already an active operator")
    pay.fails(ISSUER, "add_operator", ISSUER, "Me", match="issuer cannot also be an operator")
    pay.fails(ISSUER, "add_operator", ALICE, "Alice Bank", match="is a wallet")
    pay.fails(ISSUER, "add_operator", BANK_C, "", match="name must not be empty")
    pay.fails(ISSUER, "add_operator", BANK_C, 7, match="name must be text")
    pay.fails(ISSUER, "add_operator", b"\x01", "x", match="20-byte address")
    r = pay.ok(ISSUER, "add_operator", BANK_C, "Bank C")
    assert event(r, "OperatorAdded") == {"operator": BANK_C, "name": "Bank C"}
    pay.fails(BANK_A, "remove_operator", BANK_C, match="only the issuer")
    r = pay.ok(ISSUER, "remove_operator", BANK_C)
    assert event(r, "OperatorRemoved") == {"operator": BANK_C, "reserve": 0}
    pay.fails(ISSUER, "remove_operator", BANK_C, match="not an active operator")
    pay.fails(BANK_C, "register_wallet", STRANGER, 4, None, match="only an active operator")
    pay.fails(ISSUER, "issue", BANK_C, 100, match="active operator")
    pay.ok(ISSUER, "add_operator", BANK_C, "Bank C again")
    assert pay.view("view_operator", BANK_C) == {"name": "Bank C again", "active": True, "reserve": 0}


def test_a_removed_operator_keeps_serving_redemptions_and_can_retire(world) -> None:
    chain, pay = world
    pay.ok(ISSUER, "remove_operator", BANK_A)
    pay.fails(BANK_A, "exchange", ALICE, 100, match="only an active operator")
    pay.ok(ALICE, "redeem", 100)
    reserve = pay.view("view_reserve_of", BANK_A)
    pay.ok(BANK_A, "retire", reserve)
    assert pay.view("view_reserve_of", BANK_A) == 0
    assert pay.view("view_total_supply") == total(pay)


def test_register_wallet_checks_arguments(world) -> None:
    chain, pay = world
    pay.fails(ISSUER, "register_wallet", STRANGER, 2, b"\x01" * 32, match="only an active operator")
    pay.fails(ALICE, "register_wallet", STRANGER, 2, b"\x01" * 32, match="only an active operator")
    for tier in (0, 5, "2", True, None):
        pay.fails(BANK_A, "register_wallet", STRANGER, tier, b"\x01" * 32, match="tier must be 1, 2, 3 or 4")
    for tier in (1, 2, 3):
        pay.fails(BANK_A, "register_wallet", STRANGER, tier, None, match="kyc_hash must be the 32-byte hash")
        pay.fails(BANK_A, "register_wallet", STRANGER, tier, b"\x01" * 31, match="kyc_hash")
    pay.fails(BANK_A, "register_wallet", STRANGER, 4, b"\x01" * 5, match="kyc_hash")
    pay.fails(BANK_A, "register_wallet", STRANGER, 4, "id", match="kyc_hash")
    pay.fails(BANK_A, "register_wallet", ALICE, 2, KYC[ALICE], match="already registered")
    pay.fails(BANK_A, "register_wallet", BANK_B, 4, None, match="cannot be a wallet")
    pay.fails(BANK_A, "register_wallet", ISSUER, 4, None, match="cannot be a wallet")
    pay.fails(BANK_A, "register_wallet", b"\x00" * 19, 4, None, match="wallet must be a 20-byte address")
    r = pay.ok(BANK_A, "register_wallet", STRANGER, 1, b"\x05" * 32)
    assert event(r, "WalletRegistered") == {"wallet": STRANGER, "operator": BANK_A, "tier": 1}
    info = pay.view("view_wallet_info", STRANGER)
    assert info["kyc"] == b"\x05" * 32 and info["tier"] == 1 and info["balance"] == 0
    assert pay.view("view_wallet_info", addr(0x77)) is None


def test_update_wallet_only_by_its_operator(world) -> None:
    chain, pay = world
    pay.fails(BANK_B, "update_wallet", ANON, 2, b"\x44" * 32, match="only the bank that registered")
    pay.fails(BANK_A, "update_wallet", ANON, 2, None, match="kyc_hash")
    pay.fails(BANK_A, "update_wallet", STRANGER, 2, b"\x44" * 32, match="not a registered wallet")
    r = pay.ok(BANK_A, "update_wallet", ANON, 2, b"\x44" * 32)
    assert event(r, "WalletUpdated") == {"wallet": ANON, "operator": BANK_A, "tier": 2}
    assert pay.view("view_wallet_info", ANON)["tier"] == 2


# ---- issuance, exchange, redemption, retirement -----------------------------------------------

def test_issue_and_retire(world) -> None:
    chain, pay = world
    supply = pay.view("view_total_supply")
    pay.fails(BANK_A, "issue", BANK_A, 100, match="only the issuer")
    pay.fails(REG, "issue", BANK_A, 100, match="only the issuer")
    for bad in (0, -5, "100", True, None, 10**15 + 1):
        pay.fails(ISSUER, "issue", BANK_A, bad, match="amount")
    pay.fails(ISSUER, "issue", STRANGER, 100, match="active operator")
    r = pay.ok(ISSUER, "issue", BANK_A, 500)
    assert event(r, "Issued") == {"operator": BANK_A, "amount": 500, "supply": supply + 500}
    pay.fails(ALICE, "retire", 1, match="only an operator")
    pay.fails(BANK_A, "retire", 0, match="must be positive")
    reserve = pay.view("view_reserve_of", BANK_A)
    pay.fails(BANK_A, "retire", reserve + 1, match=f"reserve holds only {reserve} fen")
    r = pay.ok(BANK_A, "retire", 700)
    assert event(r, "Retired") == {"operator": BANK_A, "amount": 700, "supply": supply - 200}
    assert r.value == reserve - 700
    assert pay.view("view_total_supply") == supply - 200 == total(pay)


def test_exchange_and_redeem(world) -> None:
    chain, pay = world
    pay.fails(BANK_B, "exchange", ALICE, 100, match="only exchange into wallets it registered")
    pay.fails(ALICE, "exchange", ALICE, 100, match="only an active operator")
    pay.fails(BANK_A, "exchange", STRANGER, 100, match="not a registered wallet")
    pay.fails(BANK_A, "exchange", ALICE, -1, match="positive")
    # the tier 4 wallet holds 5,000 of its 10,000 yuan limit
    pay.fails(BANK_A, "exchange", ANON, 5_000 * YUAN + 1, match="balance limit of 1000000 fen")
    r = pay.ok(BANK_A, "exchange", ANON, 5_000 * YUAN)
    assert event(r, "Exchanged") == {"operator": BANK_A, "wallet": ANON, "amount": 5_000 * YUAN}
    reserve = pay.view("view_reserve_of", BANK_A)
    pay.fails(BANK_A, "exchange", ALICE, reserve + 1, match="ask the issuer to issue more")
    pay.fails(STRANGER, "redeem", 1, match="your address is not a registered wallet")
    pay.fails(ALICE, "redeem", 0, match="positive")
    pay.fails(ALICE, "redeem", 200_000 * YUAN + 1, match="your balance is only")
    r = pay.ok(ALICE, "redeem", 1_000)
    assert event(r, "Redeemed") == {"wallet": ALICE, "operator": BANK_A, "amount": 1_000}
    assert pay.view("view_reserve_of", BANK_A) == reserve + 1_000
    assert pay.view("view_total_supply") == total(pay)


# ---- payments -----------------------------------------------------------------------------

def test_small_transfer_is_pseudonymous(world) -> None:
    chain, pay = world
    r = pay.ok(ANON, "transfer", DAVE, 12_50, "noodles")
    assert names(r) == ["Transfer"]
    assert event(r, "Transfer") == {"frm": ANON, "to": DAVE, "amount": 12_50, "memo": "noodles"}
    assert r.value == 5_000 * YUAN - 12_50
    assert balance(pay, DAVE) == 1_000 * YUAN + 12_50
    pay.ok(ALICE, "transfer", BOB, 100)   # memo defaults to ""
    assert pay.view("view_total_supply") == total(pay)


def test_large_transfer_is_traced_with_both_kyc_commitments(world) -> None:
    chain, pay = world
    r = pay.ok(ALICE, "transfer", BOB, 50_000 * YUAN, "invoice 42")
    assert names(r) == ["LargeTransfer"]
    assert event(r, "LargeTransfer") == {
        "frm": ALICE, "to": BOB, "amount": 50_000 * YUAN, "memo": "invoice 42",
        "frm_kyc": KYC[ALICE], "to_kyc": KYC[BOB], "frm_operator": BANK_A, "to_operator": BANK_B,
    }
    # just below the threshold: an ordinary Transfer
    r = pay.ok(ALICE, "transfer", BOB, 50_000 * YUAN - 1)
    assert names(r) == ["Transfer"]


def test_large_transfer_needs_identified_wallets(world) -> None:
    chain, pay = world
    pay.ok(ISSUER, "set_large_threshold", 1_000 * YUAN)
    pay.fails(ANON, "transfer", ALICE, 1_000 * YUAN, match="large payment needs an identified wallet")
    pay.fails(ALICE, "transfer", DAVE, 1_000 * YUAN, match="can only go to an identified wallet")
    r = pay.ok(ALICE, "transfer", CAROL, 1_000 * YUAN)   # tier 3 is identified
    assert event(r, "LargeTransfer")["to_kyc"] == KYC[CAROL]
    r = pay.ok(ANON, "transfer", DAVE, 999 * YUAN)
    assert names(r) == ["Transfer"]


def test_transfer_argument_checks(world) -> None:
    chain, pay = world
    pay.fails(ALICE, "transfer", ALICE, 1, match="cannot pay your own wallet")
    pay.fails(ALICE, "transfer", STRANGER, 1, match="the recipient is not a registered wallet")
    pay.fails(STRANGER, "transfer", ALICE, 1, match="your address is not a registered wallet")
    pay.fails(BANK_A, "transfer", ALICE, 1, match="your address is not a registered wallet")
    pay.fails(ALICE, "transfer", b"x" * 21, 1, match="the recipient must be a 20-byte address")
    pay.fails(ALICE, "transfer", "bob", 1, match="20-byte address")
    for bad in (0, -1, "1", None, True, [1]):
        pay.fails(ALICE, "transfer", BOB, bad, match="amount")
    pay.fails(ALICE, "transfer", BOB, 1, "m" * 141, match="memo is longer than 140")
    pay.fails(ALICE, "transfer", BOB, 1, 5, match="memo must be text")
    pay.fails(ANON, "transfer", DAVE, 5_000 * YUAN + 1, match="insufficient balance")


def test_single_payment_and_daily_limits(world) -> None:
    chain, pay = world
    # tier 4: single 2,000 yuan, daily 5,000 yuan
    pay.ok(BANK_A, "exchange", ANON, 5_000 * YUAN)
    pay.fails(ANON, "transfer", DAVE, 2_000 * YUAN + 1, match="single-payment limit of 200000 fen")
    pay.ok(ANON, "transfer", BOB, 2_000 * YUAN)
    pay.ok(ANON, "transfer", BOB, 2_000 * YUAN)
    r = pay.fails(ANON, "transfer", BOB, 1_000 * YUAN + 1, match="daily limit of 500000 fen")
    assert "400000 fen already paid today" in r.error_message
    pay.ok(ANON, "transfer", BOB, 1_000 * YUAN)
    assert pay.view("view_wallet_info", ANON)["spent_today"] == 5_000 * YUAN
    pay.fails(ANON, "transfer", BOB, 1, match="daily limit")
    chain.advance(1, ms=DAY_MS)    # next day
    assert pay.view("view_wallet_info", ANON)["spent_today"] == 0
    pay.ok(ANON, "transfer", BOB, 1)


def test_recipient_balance_limit(world) -> None:
    chain, pay = world
    # DAVE (tier 4) holds 1,000 yuan of 10,000
    pay.fails(ALICE, "transfer", DAVE, 9_000 * YUAN + 1, match="would exceed its balance limit")
    pay.ok(BANK_B, "exchange", DAVE, 9_000 * YUAN)
    pay.fails(ANON, "transfer", DAVE, 1, match="would exceed its balance limit")


def test_set_tier_limits_and_threshold(world) -> None:
    chain, pay = world
    pay.fails(REG, "set_tier_limits", 4, 100, 10, 50, match="only the issuer")
    pay.fails(ISSUER, "set_tier_limits", 5, 100, 10, 50, match="tier must be")
    pay.fails(ISSUER, "set_tier_limits", 4, 100, 60, 50, match="payment_max cannot be larger than daily_max")
    pay.fails(ISSUER, "set_tier_limits", 4, 0, 10, 50, match="balance_max must be positive")
    pay.fails(ISSUER, "set_tier_limits", 4, 100, "10", 50, match="payment_max")
    r = pay.ok(ISSUER, "set_tier_limits", 4, 100_000 * YUAN, 10 * YUAN, 20 * YUAN)
    assert event(r, "TierLimitsSet") == {"tier": 4, "balance_max": 100_000 * YUAN, "payment_max": 10 * YUAN, "daily_max": 20 * YUAN}
    pay.fails(ANON, "transfer", DAVE, 10 * YUAN + 1, match="single-payment limit of 1000 fen")
    pay.fails(BANK_A, "set_large_threshold", 1, match="only the issuer")
    pay.fails(ISSUER, "set_large_threshold", 0, match="positive")
    r = pay.ok(ISSUER, "set_large_threshold", 7)
    assert event(r, "LargeThresholdSet") == {"amount": 7}
    assert pay.view("view_large_threshold") == 7


# ---- the regulator ---------------------------------------------------------------------------

def test_freeze_stops_paying_being_paid_redeeming_and_going_offline(world) -> None:
    chain, pay = world
    pay.fails(ISSUER, "freeze", BOB, "fraud", match="only the regulator")
    pay.fails(BANK_B, "freeze", BOB, "fraud", match="only the regulator")
    pay.fails(REG, "freeze", BOB, "", match="reason must not be empty")
    pay.fails(REG, "freeze", STRANGER, "x", match="not a registered wallet")
    r = pay.ok(REG, "freeze", BOB, "court order 7")
    assert event(r, "WalletFrozen") == {"wallet": BOB, "reason": "court order 7"}
    assert pay.view("view_wallet_info", BOB)["frozen"] is True
    pay.fails(REG, "freeze", BOB, "again", match="already frozen")
    pay.fails(BOB, "transfer", ALICE, 1, match="your wallet is frozen")
    pay.fails(ALICE, "transfer", BOB, 1, match="the recipient's wallet is frozen")
    pay.fails(BOB, "redeem", 1, match="your wallet is frozen")
    pay.fails(BANK_B, "exchange", BOB, 1, match="the wallet is frozen")
    device = OfflineDevice.generate(chain.suite, BOB, pay.address)
    pay.fails(BOB, "open_offline", *device.open_args(100, chain.height + 5), match="your wallet is frozen")
    pay.fails(ALICE, "unfreeze", BOB, match="only the regulator")
    r = pay.ok(REG, "unfreeze", BOB)
    assert event(r, "WalletUnfrozen") == {"wallet": BOB}
    pay.fails(REG, "unfreeze", BOB, match="not frozen")
    pay.ok(BOB, "transfer", ALICE, 1)
    pay.ok(ALICE, "transfer", BOB, 1)


def test_set_regulator(world) -> None:
    chain, pay = world
    pay.fails(REG, "set_regulator", STRANGER, match="only the issuer")
    r = pay.ok(ISSUER, "set_regulator", STRANGER)
    assert event(r, "RegulatorChanged") == {"regulator": STRANGER}
    pay.fails(REG, "freeze", BOB, "x", match="only the regulator")
    pay.ok(STRANGER, "freeze", BOB, "x")


# ---- gas ----------------------------------------------------------------------------------

def test_typical_calls_use_little_gas(world) -> None:
    chain, pay = world
    assert pay.deployed.gas_used < GAS // 20
    for r in (pay.ok(ANON, "transfer", DAVE, 100, "tea"),
              pay.ok(ALICE, "transfer", BOB, 50_000 * YUAN, "invoice"),
              pay.ok(BANK_A, "exchange", ALICE, 100)):
        assert r.gas_used < 100_000, r.gas_used
