"""Dual-offline payments end to end: the device signs, the contract settles and catches
double spends. Plus the supply invariant under random operation sequences."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chainnode.client.offline import OfflineDevice, OfflineError, Voucher, settle_args, verify_voucher, voucher_message
from tests.contracts.library.harness import addr, event, events, names
from tests.contracts.library.test_payment import (
    ALICE,
    ANON,
    BANK_A,
    BANK_B,
    BOB,
    DAVE,
    ISSUER,
    OPERATORS,
    REG,
    STRANGER,
    WALLETS,
    YUAN,
    make,
    total,
)

LOCK = 1_000 * YUAN


def open_purse(chain, pay, wallet=ANON, amount=LOCK, blocks=100, device=None):
    device = device or OfflineDevice.generate(chain.suite, wallet, pay.address)
    r = pay.ok(wallet, "open_offline", *device.open_args(amount, chain.height + blocks))
    device.load(r.value, amount)
    return device, r


@pytest.fixture(params=["sm", "ed25519"])
def world(request):
    return make(request.param)


def settle(pay, vouchers, sender=DAVE):
    return pay.ok(sender, "settle_offline", *settle_args(vouchers))


def test_open_pay_settle_close(world) -> None:
    chain, pay = world
    before = pay.view("view_balance_of", ANON)
    device, r = open_purse(chain, pay)
    assert r.value == 1
    assert event(r, "OfflineOpened") == {"wallet": ANON, "purse": 1, "device": device.public_key, "amount": LOCK,
                                         "expiry_height": chain.height + 100}
    assert pay.view("view_balance_of", ANON) == before - LOCK
    info = pay.view("view_offline_info", ANON)
    assert info["locked"] == LOCK and info["spent"] == 0 and info["left"] == LOCK and info["purse"] == 1
    assert pay.view("view_total_supply") == total(pay)

    # offline: two payments to DAVE, one to BOB; the payees' devices check them
    v1 = device.pay(DAVE, 300 * YUAN)
    v2 = device.pay(BOB, 200 * YUAN)
    v3 = device.pay(DAVE, 100 * YUAN)
    assert [v.counter for v in (v1, v2, v3)] == [1, 2, 3]
    assert all(verify_voucher(chain.suite, device.public_key, pay.address, v) for v in (v1, v2, v3))
    assert device.remaining == 400 * YUAN

    dave = pay.view("view_balance_of", DAVE)
    r = settle(pay, [v3, v1])           # settle_args sorts by counter
    assert names(r) == ["OfflinePayment", "OfflinePayment"]
    assert events(r, "OfflinePayment")[0] == {"payer": ANON, "purse": 1, "counter": 1, "payee": DAVE, "amount": 300 * YUAN}
    assert r.value == {"paid": 2, "paid_amount": 400 * YUAN, "double_spends": 0, "rejected": 0, "left": 600 * YUAN}
    assert pay.view("view_balance_of", DAVE) == dave + 400 * YUAN
    # BOB settles his voucher later, with a lower counter than DAVE's last: fine across calls
    r = settle(pay, [v2], sender=BOB)
    assert r.value["paid"] == 1
    assert pay.view("view_voucher_settled", ANON, 1, 2) == [BOB, 200 * YUAN]
    assert pay.view("view_total_supply") == total(pay)

    pay.fails(ANON, "close_offline", match="can be closed from height")
    chain.advance(100)
    anon = pay.view("view_balance_of", ANON)
    r = pay.ok(ANON, "close_offline")
    assert event(r, "OfflineClosed") == {"wallet": ANON, "purse": 1, "returned": 400 * YUAN, "spent": 600 * YUAN}
    assert pay.view("view_balance_of", ANON) == anon + 400 * YUAN
    assert pay.view("view_offline_info", ANON) is None
    pay.fails(ANON, "close_offline", match="no open offline purse")
    pay.fails(DAVE, "settle_offline", *settle_args([device.pay(DAVE, 1)]), match="no open offline purse")
    assert pay.view("view_total_supply") == total(pay)


def test_double_spends_are_reported_and_valid_vouchers_still_paid(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay)
    good = device.pay(DAVE, 400 * YUAN)                                       # counter 1
    reused = device.sign_voucher(BOB, 400 * YUAN, good.counter)               # same counter, other payment
    device.counter = 1
    second = device.pay(DAVE, 500 * YUAN)                                     # counter 2
    over = device.sign_voucher(BOB, 200 * YUAN, 3)                            # beyond the lock: 900 + 200 > 1000
    last = device.sign_voucher(DAVE, 100 * YUAN, 4)                           # still fits: 900 + 100
    r = pay.ok(DAVE, "settle_offline", ANON, [v.to_arg() for v in (good, reused, second, over, last)])
    assert names(r) == ["OfflinePayment", "OfflineDoubleSpend", "OfflinePayment", "OfflineDoubleSpend", "OfflinePayment"]
    ds = events(r, "OfflineDoubleSpend")
    assert ds[0]["payer"] == ANON and ds[0]["counter"] == 1 and ds[0]["payee"] == BOB and "counter reused" in ds[0]["reason"]
    assert ds[1]["counter"] == 3 and "exceeds the locked amount" in ds[1]["reason"]
    assert r.value == {"paid": 3, "paid_amount": LOCK, "double_spends": 2, "rejected": 0, "left": 0}
    # the honest voucher submitted again is a duplicate, not a double spend; the reused one again is
    r = settle(pay, [good])
    assert names(r) == ["OfflineVoucherRejected"] and event(r, "OfflineVoucherRejected")["reason"] == "already settled"
    r = pay.ok(BOB, "settle_offline", ANON, [reused.to_arg()])
    assert names(r) == ["OfflineDoubleSpend"]
    assert r.value["paid"] == 0        # zero valid vouchers: succeeds because it reported
    assert pay.view("view_total_supply") == total(pay)


def test_forged_and_foreign_vouchers_are_rejected(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay)
    thief = OfflineDevice.generate(chain.suite, ANON, pay.address)
    thief.load(1, LOCK)
    forged = thief.pay(DAVE, 10 * YUAN)
    # DAVE's own purse: a voucher of that purse presented against ANON's purse
    dave_device, _ = open_purse(chain, pay, wallet=DAVE, amount=100 * YUAN)
    foreign = dave_device.pay(BOB, 10 * YUAN)
    foreign_as_anon = Voucher(ANON, foreign.payee, 1, foreign.amount, foreign.counter, foreign.signature)
    # the right device, but signed for another contract or another purse number
    other_contract = OfflineDevice(chain.suite, device.private_key, device.public_key, ANON, addr(0x55))
    other_contract.load(1, LOCK)
    wrong_contract = other_contract.pay(DAVE, 10 * YUAN)
    wrong_purse = device.sign_voucher(DAVE, 10 * YUAN, 7, purse=2)
    altered = device.pay(DAVE, 10 * YUAN)
    altered = Voucher(altered.payer, altered.payee, altered.purse, altered.amount * 10, altered.counter, altered.signature)
    r = pay.ok(DAVE, "settle_offline", ANON, [v.to_arg() for v in (forged, foreign_as_anon, wrong_contract, wrong_purse, altered)])
    assert names(r) == ["OfflineVoucherRejected"] * 5
    assert all("bad signature" in f["reason"] for f in events(r, "OfflineVoucherRejected"))
    assert r.value["rejected"] == 5 and r.value["paid"] == 0 and r.value["left"] == LOCK


def test_counters_must_increase_within_one_settlement(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay)
    v1, v2 = device.pay(DAVE, 1), device.pay(DAVE, 2)
    r = pay.ok(DAVE, "settle_offline", ANON, [v2.to_arg(), v1.to_arg()])
    assert names(r) == ["OfflinePayment", "OfflineVoucherRejected"]
    assert "strictly increasing" in event(r, "OfflineVoucherRejected")["reason"]
    r = settle(pay, [v1])    # on its own it settles
    assert names(r) == ["OfflinePayment"]


def test_payee_problems_leave_the_voucher_settleable_later(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay)
    to_dave = device.pay(DAVE, 10 * YUAN)
    to_stranger = device.pay(STRANGER, 10 * YUAN)
    pay.ok(REG, "freeze", DAVE, "investigation")
    r = pay.ok(BOB, "settle_offline", *settle_args([to_dave, to_stranger]))
    reasons = [f["reason"] for f in events(r, "OfflineVoucherRejected")]
    assert "frozen" in reasons[0] and "not a registered wallet" in reasons[1]
    pay.ok(REG, "unfreeze", DAVE)
    r = settle(pay, [to_dave])
    assert names(r) == ["OfflinePayment"]
    # a payee at its balance limit: rejected, then fine after it redeems
    pay.ok(BANK_B, "exchange", DAVE, pay.view("view_tier_limits", 4)["balance_max"] - pay.view("view_balance_of", DAVE))
    big = device.pay(DAVE, 20 * YUAN)
    r = settle(pay, [big])
    assert "balance limit" in event(r, "OfflineVoucherRejected")["reason"]
    pay.ok(DAVE, "redeem", 20 * YUAN)
    assert names(settle(pay, [big])) == ["OfflinePayment"]
    # a voucher to the payer itself (only a tampered device signs one)
    selfpay = device.sign_voucher(ANON, 1, 50)
    r = settle(pay, [selfpay])
    assert "cannot pay its own wallet" in event(r, "OfflineVoucherRejected")["reason"]
    assert pay.view("view_total_supply") == total(pay)


def test_settle_fails_as_a_whole_on_bad_input_or_frozen_payer(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay)
    v = device.pay(DAVE, 5)
    arg = v.to_arg()
    pay.fails(DAVE, "settle_offline", ANON, [], match="non-empty list")
    pay.fails(DAVE, "settle_offline", ANON, arg, match="non-empty list")
    pay.fails(DAVE, "settle_offline", ANON, [arg] * 201, match="at most 200 vouchers")
    pay.fails(DAVE, "settle_offline", STRANGER, [arg], match="payer_wallet is not a registered wallet")
    pay.fails(DAVE, "settle_offline", BOB, [arg], match="no open offline purse")
    pay.fails(DAVE, "settle_offline", b"abc", [arg], match="payer_wallet must be a 20-byte address")
    pay.fails(DAVE, "settle_offline", ANON, [[1, 2]], match="voucher 0 must be a dict")
    pay.fails(DAVE, "settle_offline", ANON, [arg, dict(arg, amount=0)], match="voucher 1: amount must be positive")
    pay.fails(DAVE, "settle_offline", ANON, [dict(arg, amount="5")], match="voucher 0: amount must be a whole number")
    pay.fails(DAVE, "settle_offline", ANON, [dict(arg, counter=0)], match="counter must be an integer from 1")
    pay.fails(DAVE, "settle_offline", ANON, [dict(arg, counter=2**63)], match="counter")
    pay.fails(DAVE, "settle_offline", ANON, [dict(arg, signature=b"")], match="signature")
    pay.fails(DAVE, "settle_offline", ANON, [dict(arg, payee="dave")], match="voucher 0: payee must be a 20-byte address")
    pay.fails(DAVE, "settle_offline", ANON, [{"payee": DAVE}], match="voucher 0: amount")
    pay.ok(REG, "freeze", ANON, "suspected fraud")
    pay.fails(DAVE, "settle_offline", ANON, [arg], match="payer's wallet is frozen")
    pay.ok(REG, "unfreeze", ANON)
    assert names(pay.ok(DAVE, "settle_offline", ANON, [arg])) == ["OfflinePayment"]


def test_open_offline_checks(world) -> None:
    chain, pay = world
    device = OfflineDevice.generate(chain.suite, ANON, pay.address)
    h = chain.height
    pay.fails(STRANGER, "open_offline", device.public_key, 100, h + 5, match="your address is not a registered wallet")
    pay.fails(ANON, "open_offline", b"\x01" * 8, 100, h + 5, match="device_public_key")
    pay.fails(ANON, "open_offline", "key", 100, h + 5, match="device_public_key")
    pay.fails(ANON, "open_offline", device.public_key, 0, h + 5, match="amount must be positive")
    pay.fails(ANON, "open_offline", device.public_key, 100, h, match="expiry_height must be after the current height")
    pay.fails(ANON, "open_offline", device.public_key, 100, "soon", match="expiry_height must be a block height")
    pay.fails(ANON, "open_offline", device.public_key, 100, h + 10_000_001, match="at most 10000000 blocks ahead")
    pay.fails(ANON, "open_offline", device.public_key, 2_000 * YUAN + 1, h + 5, match="single-payment limit")
    pay.fails(DAVE, "open_offline", device.public_key, 1_000 * YUAN + 1, h + 5, match="insufficient balance")
    pay.fails(ALICE, "open_offline", device.public_key, 50_000 * YUAN, h + 5, match="below the large-payment threshold")
    open_purse(chain, pay, device=device)
    pay.fails(ANON, "open_offline", device.public_key, 100, h + 5, match="already has an open offline purse")
    # the lock counts against the day's total: 5,000 - 1,000 left today
    pay.ok(BANK_A, "exchange", ANON, 5_000 * YUAN)
    pay.ok(ANON, "transfer", DAVE, 2_000 * YUAN)
    pay.ok(ANON, "transfer", DAVE, 1_500 * YUAN)
    pay.fails(ANON, "transfer", DAVE, 500 * YUAN + 1, match="daily limit")


def test_a_new_purse_refuses_vouchers_of_the_old_one(world) -> None:
    chain, pay = world
    device, _ = open_purse(chain, pay, blocks=1)
    old = device.pay(DAVE, 10 * YUAN)
    chain.advance(1)
    pay.ok(ANON, "close_offline")
    r = pay.ok(ANON, "open_offline", *device.open_args(LOCK, chain.height + 10))   # same device key
    assert r.value == 2
    device.load(2, LOCK)
    r = settle(pay, [old])
    assert "bad signature" in event(r, "OfflineVoucherRejected")["reason"]
    assert device.pay(DAVE, 1).counter == old.counter + 1      # the device counter never goes back


def test_a_frozen_wallet_may_still_close_its_purse_into_its_frozen_balance(world) -> None:
    chain, pay = world
    open_purse(chain, pay, blocks=1)
    pay.ok(REG, "freeze", ANON, "x")
    chain.advance(1)
    r = pay.ok(ANON, "close_offline")
    assert event(r, "OfflineClosed")["returned"] == LOCK
    assert pay.view("view_wallet_info", ANON)["frozen"] is True


def test_device_refuses_unsafe_vouchers(world) -> None:
    chain, pay = world
    device = OfflineDevice.generate(chain.suite, ANON, pay.address)
    with pytest.raises(OfflineError, match="no purse loaded"):
        device.pay(DAVE, 1)
    device.load(3, 100)
    with pytest.raises(OfflineError, match="only 100 left"):
        device.pay(DAVE, 101)
    with pytest.raises(OfflineError, match="cannot pay itself"):
        device.pay(ANON, 1)
    with pytest.raises(OfflineError, match="payee"):
        device.pay(b"x", 1)
    with pytest.raises(OfflineError, match="amount"):
        device.pay(DAVE, 0)
    v = device.pay(DAVE, 60)
    assert device.remaining == 40 and device.counter == 1
    assert v.message(pay.address) == (b"chainnode/voucher/v1" + pay.address + ANON + DAVE + (3).to_bytes(8, "big")
                                      + (60).to_bytes(8, "big") + (1).to_bytes(8, "big"))
    assert v.message(pay.address) == voucher_message(pay.address, ANON, DAVE, 3, 60, 1)
    assert not verify_voucher(chain.suite, device.public_key, addr(0x55), v)
    with pytest.raises(OfflineError, match="different payers or purses"):
        settle_args([v, device.sign_voucher(DAVE, 1, 9, purse=4)])
    with pytest.raises(OfflineError, match="no vouchers"):
        settle_args([])
    assert settle_args([v, v]) == [ANON, [v.to_arg()]]


def test_settlement_gas_is_well_under_the_limit(world) -> None:
    chain, pay = world
    device, r = open_purse(chain, pay)
    assert r.gas_used < 100_000
    vouchers = [device.pay(DAVE, 1) for _ in range(200)]
    r = settle(pay, vouchers)
    assert r.value["paid"] == 200
    # The largest settlement (200 vouchers, ~40,000 gas each for the SM2 check alone) fits
    # the default tx_gas_limit (30,000,000) with room to spare.
    assert r.gas_used < 30_000_000 // 2, r.gas_used


# ---- the supply invariant -----------------------------------------------------------------

def _base():
    chain, pay = make("sm")
    return chain, pay, chain.store.snapshot(), chain.height, chain.time_ms


BASE = _base()     # built once, at import (so the engine is made before hypothesis runs)


def _fresh():
    chain, pay, snap, height, time_ms = BASE
    chain.store.data = dict(snap)
    chain.height, chain.time_ms = height, time_ms
    return chain, pay


PARTIES = st.sampled_from(WALLETS + OPERATORS + (ISSUER, STRANGER))
PAYERS = st.one_of(st.sampled_from(WALLETS), st.sampled_from(WALLETS), PARTIES)   # mostly wallets
SMALL = st.integers(min_value=1, max_value=LOCK)
AMOUNTS = st.one_of(SMALL, SMALL, st.integers(min_value=-5, max_value=3 * LOCK), st.sampled_from([LOCK, 60_000 * YUAN]))
OPS = st.one_of(
    st.tuples(st.just("transfer"), PAYERS, st.one_of(st.sampled_from(WALLETS[::-1]), PARTIES), AMOUNTS),
    st.tuples(st.just("issue"), st.just(ISSUER), st.sampled_from(OPERATORS), AMOUNTS),
    st.tuples(st.just("retire"), st.sampled_from(OPERATORS), st.none(), AMOUNTS),
    st.tuples(st.just("exchange"), st.sampled_from(OPERATORS), PAYERS, AMOUNTS),
    st.tuples(st.just("redeem"), PAYERS, st.none(), AMOUNTS),
    st.tuples(st.just("open"), PAYERS, st.none(), AMOUNTS),
    st.tuples(st.just("open"), PAYERS, st.none(), AMOUNTS),
    # pay, settle and close act on the purse number `index` of those open (if any)
    st.tuples(st.just("pay"), st.integers(0, 4), PAYERS, SMALL),
    st.tuples(st.just("pay"), st.integers(0, 4), PAYERS, SMALL),
    st.tuples(st.just("pay"), st.integers(0, 4), PAYERS, SMALL),
    st.tuples(st.just("settle"), st.integers(0, 4), st.none(), st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("settle"), st.integers(0, 4), st.none(), st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("close"), st.integers(0, 4), st.none(), st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("freeze"), st.just(REG), st.sampled_from(WALLETS), st.booleans()),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(OPS, min_size=5, max_size=30))
def test_supply_invariant_under_random_operations(ops) -> None:
    chain, pay = _fresh()
    devices: dict[bytes, OfflineDevice] = {}
    held: dict[bytes, list] = {}
    for op, who, other, n in ops:
        if op in ("pay", "settle", "close"):
            if not devices:
                continue
            who = sorted(devices)[who % len(devices)]
        if op == "transfer":
            pay.tx(who, "transfer", other, n, "")
        elif op in ("issue", "exchange"):
            pay.tx(who, op, other, n)
        elif op in ("retire", "redeem"):
            pay.tx(who, op, n)
        elif op == "open":
            device = OfflineDevice.generate(chain.suite, who, pay.address)
            r = pay.tx(who, "open_offline", device.public_key, n, chain.height + 20)
            if r.ok:
                device.load(r.value, n)
                devices[who] = device
                held[who] = []
        elif op == "pay":
            d = devices[who]
            # a dishonest device: ignores its own lock and sometimes reuses a counter
            if held[who] and n % 3 == 0:
                v = d.sign_voucher(other, max(1, n), held[who][-1].counter)
            else:
                d.counter += 1
                v = d.sign_voucher(other, max(1, n), d.counter)
            held[who].append(v)
        elif op == "settle" and held[who]:
            vs = held[who][-(n + 1):]
            pay.tx(STRANGER, "settle_offline", who, [v.to_arg() for v in vs])
        elif op == "close":
            chain.advance(n)
            r = pay.tx(who, "close_offline")
            if r.ok:
                devices.pop(who, None)
                held.pop(who, None)
        elif op == "freeze":
            pay.tx(REG, "freeze" if n else "unfreeze", *([other, "x"] if n else [other]))
        assert pay.view("view_total_supply") == total(pay)
    for w in WALLETS:
        info = pay.view("view_offline_info", w)
        assert info is None or 0 <= info["spent"] <= info["locked"]
