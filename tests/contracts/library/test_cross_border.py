"""The cross_border contract through the real engine: declarations, payments, FX, quotas."""

from __future__ import annotations

import pytest

from tests.contracts.library.harness import GAS, Chain, addr, event, names

ADMIN = addr(0x0A)
REG = addr(0x2E)          # the contract's regulator (e.g. the cross-border supervisor)
HKMA = addr(0x2F)         # an institution with the regulator role
SZ_CUSTOMS = addr(0xC1)   # CN customs
HK_CUSTOMS = addr(0xC2)
CN_BANK = addr(0xB1)      # the importer's bank in Shenzhen
HK_BANK = addr(0xB2)      # the exporter's bank in Hong Kong
CN_BANK2 = addr(0xB3)
MO_BANK = addr(0xB4)
NOBODY = addr(0x99)
GOODS = b"\x6f" * 32
HKD_CNY = 920_000         # 1 HKD = 0.92 CNY, in CNY minor units per HKD minor unit x 10**6


@pytest.fixture
def world():
    chain = Chain("sm")
    xb = chain.deploy("cross_border", ADMIN, REG, sender=addr(0x01))
    for who, name, j, role in ((SZ_CUSTOMS, "Shenzhen Customs", "CN", "customs"),
                               (HK_CUSTOMS, "HK Customs and Excise", "HK", "customs"),
                               (CN_BANK, "Shenzhen Bank", "CN", "bank"), (HK_BANK, "Harbour Bank", "HK", "bank"),
                               (CN_BANK2, "Second CN Bank", "CN", "bank"), (MO_BANK, "Macao Bank", "MO", "bank"),
                               (HKMA, "HKMA", "HK", "regulator")):
        xb.ok(ADMIN, "register_institution", who, name, j, role)
    xb.ok(ADMIN, "set_quota", CN_BANK, "HKD", 10_000_000_00)
    xb.ok(ADMIN, "set_quota", CN_BANK, "CNY", 10_000_000_00)
    # an HK exporter sells seafood to a Shenzhen importer for 1,000,000.00 CNY
    xb.ok(SZ_CUSTOMS, "declare_trade", "T-1", "HK Ocean Seafood Ltd", "Shenzhen Fresh Co", "CNY", 1_000_000_00, GOODS)
    return chain, xb


def pay(xb, ref, amount, currency="CNY", fx=1_000_000, trade="T-1", payer=CN_BANK, payee=HK_BANK, purpose="goods"):
    return xb.tx(payer, "submit_payment", ref, trade, payer, payee, currency, amount, fx, purpose)


def test_init_and_institutions() -> None:
    chain = Chain("sm")
    xb = chain.deploy("cross_border", None, None, sender=ADMIN)
    assert event(xb.deployed, "CrossBorderCreated") == {"admin": ADMIN, "regulator": ADMIN, "tolerance_bp": 100}
    xb.fails(NOBODY, "register_institution", CN_BANK, "x", "CN", "bank", match="only the admin")
    xb.fails(ADMIN, "register_institution", CN_BANK, "x", "TW", "bank", match="jurisdiction must be CN, HK or MO")
    xb.fails(ADMIN, "register_institution", CN_BANK, "x", "CN", "broker", match="role must be bank, customs or regulator")
    xb.fails(ADMIN, "register_institution", CN_BANK, "", "CN", "bank", match="name must be non-empty")
    xb.fails(ADMIN, "register_institution", "bank", "x", "CN", "bank", match="20-byte address")
    r = xb.ok(ADMIN, "register_institution", CN_BANK, "Shenzhen Bank", "CN", "bank")
    assert event(r, "InstitutionRegistered") == {"institution": CN_BANK, "name": "Shenzhen Bank", "jurisdiction": "CN", "role": "bank"}
    xb.fails(ADMIN, "register_institution", CN_BANK, "x", "HK", "bank", match="already a registered institution")
    xb.fails(NOBODY, "remove_institution", CN_BANK, match="only the admin")
    assert names(xb.ok(ADMIN, "remove_institution", CN_BANK)) == ["InstitutionRemoved"]
    xb.fails(ADMIN, "remove_institution", CN_BANK, match="not a registered institution")
    xb.fails(ADMIN, "set_quota", CN_BANK, "CNY", 5, match="institution is not a registered bank")
    xb.ok(ADMIN, "register_institution", CN_BANK, "Shenzhen Bank", "CN", "bank")
    assert xb.view("view_institution", CN_BANK)["active"] is True
    assert event(xb.ok(ADMIN, "set_regulator", REG), "RegulatorChanged") == {"regulator": REG}
    xb.fails(NOBODY, "set_regulator", REG, match="only the admin")


def test_quota_and_tolerance_settings(world) -> None:
    chain, xb = world
    xb.fails(CN_BANK, "set_quota", CN_BANK, "CNY", 5, match="only the admin")
    xb.fails(ADMIN, "set_quota", SZ_CUSTOMS, "CNY", 5, match="not a registered bank")
    for cur in ("cny", "CN", "RMB1", 5, "ÄBC"):
        xb.fails(ADMIN, "set_quota", CN_BANK, cur, 5, match="currency must be a 3-letter")
    for bad in (-1, "5", True, 10**15 + 1):
        xb.fails(ADMIN, "set_quota", CN_BANK, "USD", bad, match="amount must be a whole number")
    r = xb.ok(ADMIN, "set_quota", HK_BANK, "USD", 0)
    assert event(r, "QuotaSet") == {"institution": HK_BANK, "currency": "USD", "limit": 0, "used": 0}
    assert xb.view("view_quota_of", CN_BANK) == {
        "HKD": {"limit": 10_000_000_00, "used": 0, "remaining": 10_000_000_00},
        "CNY": {"limit": 10_000_000_00, "used": 0, "remaining": 10_000_000_00},
    }
    assert xb.view("view_quota_of", NOBODY) == {}
    xb.fails(CN_BANK, "set_tolerance_bp", 5, match="only the admin")
    for bad in (-1, 10_001, "5", None):
        xb.fails(ADMIN, "set_tolerance_bp", bad, match="basis_points must be a whole number from 0 to 10000")
    assert event(xb.ok(ADMIN, "set_tolerance_bp", 0), "ToleranceSet") == {"tolerance_bp": 0}
    assert xb.view("view_tolerance_bp") == 0


def test_declare_trade_checks(world) -> None:
    chain, xb = world
    for who in (CN_BANK, ADMIN, REG, HKMA, NOBODY):
        xb.fails(who, "declare_trade", "T-2", "a", "b", "CNY", 100, GOODS, match="only a registered customs office")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-1", "a", "b", "CNY", 100, GOODS, match="already declared")
    xb.fails(SZ_CUSTOMS, "declare_trade", "", "a", "b", "CNY", 100, GOODS, match="ref must be a reference")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-2", "", "b", "CNY", 100, GOODS, match="exporter must be non-empty")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-2", "a", b"\x01", "CNY", 100, GOODS, match="importer must be a 20-byte address")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-2", "a", "b", "yuan", 100, GOODS, match="currency")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-2", "a", "b", "CNY", 0, GOODS, match="amount must be positive")
    xb.fails(SZ_CUSTOMS, "declare_trade", "T-2", "a", "b", "CNY", 100, b"x", match="goods_hash must be the 32-byte hash")
    r = xb.ok(HK_CUSTOMS, "declare_trade", "T-2", addr(0x42), "Importer Ltd", "HKD", 500_00, GOODS)
    assert event(r, "TradeDeclared") == {"ref": "T-2", "exporter": addr(0x42), "importer": "Importer Ltd", "currency": "HKD",
                                         "amount": 500_00, "goods_hash": GOODS, "customs": HK_CUSTOMS, "jurisdiction": "HK"}
    t = xb.view("view_trade", "T-2")
    assert t["paid"] == 0 and t["cap"] == 505_00 and t["remaining"] == 505_00 and t["matched"] is False


def test_matching_payment_settles(world) -> None:
    chain, xb = world
    r = pay(xb, "P-1", 1_000_000_00, purpose="seafood, invoice 88")
    assert r.ok, r
    assert r.value == 1_000_000_00
    assert event(r, "PaymentSubmitted") == {"ref": "P-1", "trade_ref": "T-1", "payer_bank": CN_BANK, "payee_bank": HK_BANK,
                                            "currency": "CNY", "amount": 1_000_000_00, "fx_rate": 1_000_000,
                                            "converted": 1_000_000_00, "purpose": "seafood, invoice 88"}
    assert xb.view("view_payment", "P-1")["status"] == "pending"
    xb.fails(CN_BANK, "settle", "P-1", match="only the payee bank")
    r = xb.ok(HK_BANK, "settle", "P-1")
    assert event(r, "PaymentSettled") == {"ref": "P-1", "trade_ref": "T-1", "payee_bank": HK_BANK, "amount": 1_000_000_00, "currency": "CNY"}
    xb.fails(HK_BANK, "settle", "P-1", match="already settled")
    xb.fails(HK_BANK, "reject", "P-1", "late", match="already settled")
    t = xb.view("view_trade", "T-1")
    assert t["settled"] == t["paid"] == 1_000_000_00 and t["matched"] is True and t["payments"] == ["P-1"]
    assert [p["ref"] for p in xb.view("view_payments_for_trade", "T-1")] == ["P-1"]
    assert xb.view("view_quota_of", CN_BANK)["CNY"]["used"] == 1_000_000_00


def test_payment_rejections(world) -> None:
    chain, xb = world
    xb.fails(HK_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "CNY", 100, 1_000_000, "goods",
             match="only the payer bank itself")
    xb.fails(SZ_CUSTOMS, "submit_payment", "P-1", "T-1", SZ_CUSTOMS, HK_BANK, "CNY", 100, 1_000_000, "goods",
             match="payer_bank is not a registered bank")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, NOBODY, "CNY", 100, 1_000_000, "goods",
             match="payee_bank is not a registered bank")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, CN_BANK2, "CNY", 100, 1_000_000, "goods",
             match="both banks are in CN")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-404", CN_BANK, HK_BANK, "CNY", 100, 1_000_000, "goods",
             match="no declared trade with reference T-404")
    xb.fails(CN_BANK, "submit_payment", "", "T-1", CN_BANK, HK_BANK, "CNY", 100, 1_000_000, "goods", match="ref must be")
    for bad in (0, -100, "100", True):
        xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "CNY", bad, 1_000_000, "goods", match="amount")
    for bad in (0, -1, "1", 10**12 + 1):
        xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "HKD", 100, bad, "goods", match="fx_rate must be")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "CNY", 100, 999_999, "goods",
             match="fx_rate must be 1000000")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "CNY", 100, 1_000_000, "", match="purpose")
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "USD", 100, 7_000_000, "goods",
             match="no quota in USD")
    assert pay(xb, "P-1", 100).ok
    xb.fails(CN_BANK, "submit_payment", "P-1", "T-1", CN_BANK, HK_BANK, "CNY", 100, 1_000_000, "goods",
             match="payment reference P-1 is already used")


def test_over_payment_is_rejected_beyond_the_tolerance(world) -> None:
    chain, xb = world
    # declared 1,000,000.00 CNY; tolerance 1 % -> at most 1,010,000.00
    assert pay(xb, "P-1", 600_000_00).ok
    r = xb.fails(CN_BANK, "submit_payment", "P-2", "T-1", CN_BANK, HK_BANK, "CNY", 410_000_01, 1_000_000, "goods",
                 match="would total 101000001 but it was declared at 100000000 (at most 101000000 with the tolerance), in CNY minor units")
    assert "pay at most 41000000 or ask customs to amend the declaration" in r.error_message
    assert pay(xb, "P-2", 410_000_00).ok
    assert xb.view("view_trade", "T-1")["remaining"] == 0
    xb.fails(CN_BANK, "submit_payment", "P-3", "T-1", CN_BANK, HK_BANK, "CNY", 1, 1_000_000, "goods", match="would total")
    # with no tolerance, the same payments could not have passed
    xb.ok(ADMIN, "set_tolerance_bp", 0)
    assert xb.view("view_trade", "T-1")["remaining"] == -10_000_00


def test_fx_conversion_rounds_half_up(world) -> None:
    chain, xb = world
    xb.ok(SZ_CUSTOMS, "declare_trade", "T-FX", "HK Ltd", "SZ Co", "CNY", 100, GOODS)
    xb.ok(ADMIN, "set_tolerance_bp", 0)
    # 1 HKD cent at exactly 0.5 fen rounds up to 1 fen; at 0.499999 fen it rounds down to 0
    r = pay(xb, "FX-1", 1, currency="HKD", fx=500_000, trade="T-FX")
    assert r.ok and r.value == 1
    r = pay(xb, "FX-2", 1, currency="HKD", fx=499_999, trade="T-FX")
    assert r.ok and r.value == 0
    # 108.69 HKD at 0.92: 10,869 cents * 0.92 = 9,999.48 fen -> 9,999; 1 + 0 + 9,999 > the 100 declared
    r = pay(xb, "FX-3", 108_69, currency="HKD", fx=HKD_CNY, trade="T-FX")
    assert not r.ok and "would total 10000 but" in r.error_message
    xb.ok(SZ_CUSTOMS, "declare_trade", "T-FX2", "HK Ltd", "SZ Co", "CNY", 10_000_00, GOODS)
    r = pay(xb, "FX-4", 10_869_57, currency="HKD", fx=HKD_CNY, trade="T-FX2")   # 1,086,957 * 0.92 = 1,000,000.44
    assert r.ok and r.value == 10_000_00
    assert xb.view("view_payment", "FX-4")["converted"] == 10_000_00
    r = pay(xb, "FX-5", 1, currency="HKD", fx=HKD_CNY, trade="T-FX2")   # 0.92 fen rounds up to 1: over the cap
    assert not r.ok and "would total 1000001 but" in r.error_message
    assert xb.view("view_quota_of", CN_BANK)["HKD"]["used"] == 2 + 10_869_57


def test_quota_exhaustion_and_release_on_reject(world) -> None:
    chain, xb = world
    xb.ok(ADMIN, "set_quota", CN_BANK, "CNY", 500_000_00)
    assert pay(xb, "P-1", 300_000_00).ok
    r = xb.fails(CN_BANK, "submit_payment", "P-2", "T-1", CN_BANK, HK_BANK, "CNY", 200_000_01, 1_000_000, "goods",
                 match="quota is exhausted: 20000000 left of 50000000")
    assert pay(xb, "P-2", 200_000_00).ok
    xb.fails(CN_BANK, "submit_payment", "P-3", "T-1", CN_BANK, HK_BANK, "CNY", 1, 1_000_000, "goods", match="quota is exhausted")
    xb.fails(CN_BANK, "reject", "P-2", "no", match="only the payee bank or a regulator")
    xb.fails(HK_BANK, "reject", "P-2", "", match="reason must be non-empty")
    r = xb.ok(HK_BANK, "reject", "P-2", "beneficiary account closed")
    assert event(r, "PaymentRejected") == {"ref": "P-2", "trade_ref": "T-1", "by": HK_BANK, "reason": "beneficiary account closed"}
    assert xb.view("view_quota_of", CN_BANK)["CNY"]["remaining"] == 200_000_00
    assert xb.view("view_trade", "T-1")["paid"] == 300_000_00
    xb.fails(HK_BANK, "reject", "P-2", "again", match="already rejected")
    xb.fails(HK_BANK, "settle", "P-2", match="already rejected")
    # the regulator may reject too; lowering a quota below use blocks new payments
    assert names(xb.ok(HKMA, "reject", "P-1", "sanctions screening")) == ["PaymentRejected"]
    xb.ok(ADMIN, "set_quota", CN_BANK, "CNY", 0)
    xb.fails(CN_BANK, "submit_payment", "P-4", "T-1", CN_BANK, HK_BANK, "CNY", 1, 1_000_000, "goods", match="0 left of 0")


def test_flag_holds_a_pending_payment(world) -> None:
    chain, xb = world
    assert pay(xb, "P-1", 100_000_00).ok
    for who in (HK_BANK, CN_BANK, ADMIN, SZ_CUSTOMS):
        xb.fails(who, "flag", "P-1", "odd", match="only a regulator")
    xb.fails(REG, "flag", "P-404", "odd", match="no payment with reference P-404")
    xb.fails(REG, "flag", "P-1", "", match="reason must be non-empty")
    r = xb.ok(REG, "flag", "P-1", "price far above market")
    assert event(r, "PaymentFlagged") == {"ref": "P-1", "trade_ref": "T-1", "by": REG, "reason": "price far above market", "status": "pending"}
    xb.fails(HKMA, "flag", "P-1", "x", match="already flagged")
    xb.fails(HK_BANK, "settle", "P-1", match="held by a regulator (price far above market)")
    xb.fails(HK_BANK, "unflag", "P-1", match="only a regulator")
    xb.fails(HK_BANK, "reject", "P-404", "x", match="no payment with reference P-404")
    assert event(xb.ok(HKMA, "unflag", "P-1"), "PaymentUnflagged") == {"ref": "P-1", "by": HKMA}
    xb.fails(REG, "unflag", "P-1", match="not flagged")
    xb.ok(HK_BANK, "settle", "P-1")
    # a settled payment can still be flagged for the record; a rejected one cannot
    assert event(xb.ok(REG, "flag", "P-1", "audit"), "PaymentFlagged")["status"] == "settled"
    assert pay(xb, "P-2", 1).ok
    xb.ok(HK_BANK, "reject", "P-2", "dup")
    xb.fails(REG, "flag", "P-2", "x", match="was rejected")


def test_views_fail_clearly_and_gas_is_small(world) -> None:
    chain, xb = world
    for method in ("view_payment", "view_trade", "view_payments_for_trade"):
        r = chain.engine.query(chain.store, chain.ctx(NOBODY), xb.address, method, ["NOPE"], GAS)
        assert not r.ok and r.error_type == "ContractError" and "NOPE" in r.error_message
    r = pay(xb, "P-1", 100, currency="HKD", fx=HKD_CNY)
    assert r.gas_used < 100_000, r.gas_used
    assert xb.deployed.gas_used < GAS // 20
    # a trade in MO paid from HK also works (any two different jurisdictions)
    xb.ok(ADMIN, "set_quota", HK_BANK, "MOP", 1_000_00)
    xb.ok(HK_CUSTOMS, "declare_trade", "T-MO", "Macao Wine", "HK Bar", "MOP", 1_000_00, GOODS)
    assert pay(xb, "P-MO", 1_000_00, currency="MOP", trade="T-MO", payer=HK_BANK, payee=MO_BANK).ok


def test_the_documented_story(world) -> None:
    chain, xb = world
    assert pay(xb, "P-1", 1_000_000_00, purpose="seafood, invoice 88").ok
    xb.ok(HK_BANK, "settle", "P-1")
    assert xb.view("view_trade", "T-1")["matched"] is True
    r = xb.fails(CN_BANK, "submit_payment", "P-2", "T-1", CN_BANK, HK_BANK, "HKD", 20_000_00, HKD_CNY, "seafood",
                 match="would total 101840000 but it was declared at 100000000 (at most 101000000 with the tolerance)")
    assert "pay at most 1000000 or ask customs" in r.error_message
