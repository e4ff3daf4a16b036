"""Cross-border: matching the information flow (customs declarations) with the capital flow
(bank payments) between the mainland (CN), Hong Kong (HK) and Macao (MO).

The admin registers institutions with a jurisdiction and a role (bank, customs,
regulator) and gives banks payment quotas per currency. Customs declares a trade; the
payer bank submits a payment against it; the payment is refused if the trade does not
exist, if the payments against the trade would exceed its declared amount by more than the
tolerance, or if the payer bank's quota is exhausted. The payee bank settles or rejects
the payment; a regulator may reject a pending payment, or flag a payment (a flagged
pending payment is held: it cannot be settled until a regulator unflags it).

Amounts are integers in minor units (fen, cents, avos). A payment in another currency than
its trade is converted with `fx_rate`: trade-currency minor units per one payment-currency
minor unit, scaled by 10**6 (1 HKD = 0.92 CNY is fx_rate 920_000), rounded half up:

    converted = (amount * fx_rate + 500_000) // 1_000_000

A payment is accepted while  paid + converted <= declared + declared * tolerance_bp // 10_000
(the allowance rounds down), where `paid` counts pending and settled payments; a rejected
payment no longer counts and gives its quota back.
"""

JURISDICTIONS = ("CN", "HK", "MO")
INSTITUTION_ROLES = ("bank", "customs", "regulator")
FX_SCALE = 1_000_000
FX_RATE_MAX = 1_000_000_000_000          # a million units of the trade currency per unit
AMOUNT_MAX = 1_000_000_000_000_000
DEFAULT_TOLERANCE_BP = 100               # 1 %
TOLERANCE_BP_MAX = 10_000
REF_CHARS_MAX = 64
TEXT_CHARS_MAX = 128
REASON_CHARS_MAX = 256
PAYMENTS_PER_TRADE_MAX = 100
QUOTA_CURRENCIES_MAX = 20


# ---- argument checks -----------------------------------------------------------------------

def _fail(message):
    raise ContractError(message)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_address(value, what):
    if not (isinstance(value, bytes) and len(value) == 20):
        _fail(f"{what} must be a 20-byte address")


def _check_text(value, what, max_chars):
    if not isinstance(value, str) or len(value) == 0:
        _fail(f"{what} must be non-empty text")
    if len(value) > max_chars:
        _fail(f"{what} is longer than {max_chars} characters")


def _check_ref(value, what):
    if not isinstance(value, str) or len(value) == 0 or len(value) > REF_CHARS_MAX:
        _fail(f"{what} must be a reference: text of 1 to {REF_CHARS_MAX} characters")


def _check_amount(value, what):
    if not _is_int(value):
        _fail(f"{what} must be a whole number of minor units (e.g. fen or cents)")
    if value <= 0:
        _fail(f"{what} must be positive")
    if value > AMOUNT_MAX:
        _fail(f"{what} is larger than the maximum of {AMOUNT_MAX}")


def _check_currency(value):
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()
            and value.isupper()):
        _fail("currency must be a 3-letter ISO 4217 code in capitals, e.g. CNY, HKD, MOP, USD")


def _check_party(value, what):
    if isinstance(value, bytes):
        _check_address(value, what)
        return
    _check_text(value, what, TEXT_CHARS_MAX)


# ---- roles -----------------------------------------------------------------------------------

def _institution(address):
    inst = storage.get(["inst", address])
    if inst is None or not inst["active"]:
        return None
    return inst


def _only_admin():
    if ctx.sender != storage["admin"]:
        _fail("only the admin may do this")


def _is_regulator(address):
    if address == storage["regulator"]:
        return True
    inst = _institution(address)
    return inst is not None and inst["role"] == "regulator"


def _only_regulator():
    if not _is_regulator(ctx.sender):
        _fail("only a regulator may do this")


def _bank(address, what):
    inst = _institution(address)
    if inst is None or inst["role"] != "bank":
        _fail(f"{what} is not a registered bank")
    return inst


def _payment(ref):
    _check_ref(ref, "ref")
    p = storage.get(["pay", ref])
    if p is None:
        _fail(f"there is no payment with reference {ref}")
    return p


def _trade(ref, what):
    _check_ref(ref, what)
    t = storage.get(["trade", ref])
    if t is None:
        _fail(f"there is no declared trade with reference {ref}; customs must declare it first")
    return t


def _cap(t, tolerance_bp):
    return t["amount"] + t["amount"] * tolerance_bp // 10_000


# ---- deployment and administration -------------------------------------------------------------

def init(admin=None, regulator=None):
    if admin is None:
        admin = ctx.sender
    if regulator is None:
        regulator = ctx.sender
    _check_address(admin, "admin")
    _check_address(regulator, "regulator")
    storage["admin"] = admin
    storage["regulator"] = regulator
    storage["tolerance_bp"] = DEFAULT_TOLERANCE_BP
    emit("CrossBorderCreated", admin=admin, regulator=regulator, tolerance_bp=DEFAULT_TOLERANCE_BP)


def set_regulator(address):
    _only_admin()
    _check_address(address, "address")
    storage["regulator"] = address
    emit("RegulatorChanged", regulator=address)


def register_institution(address, name, jurisdiction, role):
    """The admin registers (or re-registers a removed) bank, customs office or regulator."""
    _only_admin()
    _check_address(address, "address")
    _check_text(name, "name", TEXT_CHARS_MAX)
    if not (isinstance(jurisdiction, str) and jurisdiction in JURISDICTIONS):
        _fail("jurisdiction must be CN, HK or MO")
    if not (isinstance(role, str) and role in INSTITUTION_ROLES):
        _fail("role must be bank, customs or regulator")
    key = ["inst", address]
    old = storage.get(key)
    if old is not None and old["active"]:
        _fail("this address is already a registered institution; remove it first to change it")
    storage[key] = {"name": name, "jurisdiction": jurisdiction, "role": role, "active": True}
    emit("InstitutionRegistered", institution=address, name=name, jurisdiction=jurisdiction, role=role)


def remove_institution(address):
    _only_admin()
    _check_address(address, "address")
    key = ["inst", address]
    inst = storage.get(key)
    if inst is None or not inst["active"]:
        _fail("this address is not a registered institution")
    inst["active"] = False
    storage[key] = inst
    emit("InstitutionRemoved", institution=address)


def set_quota(institution, currency, amount):
    """The admin sets a bank's total quota in a currency (what it may have pending + settled).

    Lowering it below what is already used blocks new payments; it never undoes old ones."""
    _only_admin()
    _check_address(institution, "institution")
    _bank(institution, "institution")
    _check_currency(currency)
    if not _is_int(amount) or amount < 0 or amount > AMOUNT_MAX:
        _fail(f"amount must be a whole number of minor units from 0 to {AMOUNT_MAX}")
    key = ["quota", institution, currency]
    q = storage.get(key)
    if q is None:
        ikey = ["quotas", institution]
        currencies = storage.get(ikey, [])
        if len(currencies) >= QUOTA_CURRENCIES_MAX:
            _fail(f"a bank may have quotas in at most {QUOTA_CURRENCIES_MAX} currencies")
        currencies.append(currency)
        storage[ikey] = currencies
        q = {"limit": amount, "used": 0}
    else:
        q["limit"] = amount
    storage[key] = q
    emit("QuotaSet", institution=institution, currency=currency, limit=amount, used=q["used"])


def set_tolerance_bp(basis_points):
    """How far (in 1/100 of a percent) payments may exceed a trade's declared amount."""
    _only_admin()
    if not _is_int(basis_points) or basis_points < 0 or basis_points > TOLERANCE_BP_MAX:
        _fail(f"basis_points must be a whole number from 0 to {TOLERANCE_BP_MAX} (100 = 1 %)")
    storage["tolerance_bp"] = basis_points
    emit("ToleranceSet", tolerance_bp=basis_points)


# ---- trades and payments -------------------------------------------------------------------------

def declare_trade(ref, exporter, importer, currency, amount, goods_hash):
    """Customs declares a trade (the information flow)."""
    inst = _institution(ctx.sender)
    if inst is None or inst["role"] != "customs":
        _fail("only a registered customs office may declare trades")
    _check_ref(ref, "ref")
    _check_party(exporter, "exporter")
    _check_party(importer, "importer")
    _check_currency(currency)
    _check_amount(amount, "amount")
    if not (isinstance(goods_hash, bytes) and len(goods_hash) == 32):
        _fail("goods_hash must be the 32-byte hash of the declaration documents")
    key = ["trade", ref]
    if key in storage:
        _fail(f"trade reference {ref} is already declared")
    storage[key] = {"exporter": exporter, "importer": importer, "currency": currency,
                    "amount": amount, "goods_hash": goods_hash, "customs": ctx.sender,
                    "jurisdiction": inst["jurisdiction"], "paid": 0, "settled": 0,
                    "payments": [], "height": ctx.block_height}
    emit("TradeDeclared", ref=ref, exporter=exporter, importer=importer, currency=currency,
         amount=amount, goods_hash=goods_hash, customs=ctx.sender,
         jurisdiction=inst["jurisdiction"])


def submit_payment(ref, trade_ref, payer_bank, payee_bank, currency, amount, fx_rate, purpose):
    """The payer bank submits a payment against a declared trade (the capital flow)."""
    _check_address(payer_bank, "payer_bank")
    if ctx.sender != payer_bank:
        _fail("only the payer bank itself may submit its payment")
    payer = _bank(payer_bank, "payer_bank")
    _check_address(payee_bank, "payee_bank")
    payee = _bank(payee_bank, "payee_bank")
    if payer["jurisdiction"] == payee["jurisdiction"]:
        _fail(f"both banks are in {payer['jurisdiction']}: this contract records cross-border payments only")
    _check_ref(ref, "ref")
    if ["pay", ref] in storage:
        _fail(f"payment reference {ref} is already used")
    tkey = ["trade", trade_ref]
    t = _trade(trade_ref, "trade_ref")
    _check_currency(currency)
    _check_amount(amount, "amount")
    if not _is_int(fx_rate) or fx_rate <= 0 or fx_rate > FX_RATE_MAX:
        _fail("fx_rate must be a positive whole number: trade-currency units per payment-currency unit, times 1000000")
    if currency == t["currency"] and fx_rate != FX_SCALE:
        _fail(f"the payment is in the trade's currency, so fx_rate must be {FX_SCALE} (1.0)")
    _check_text(purpose, "purpose", TEXT_CHARS_MAX)
    if len(t["payments"]) >= PAYMENTS_PER_TRADE_MAX:
        _fail(f"a trade may have at most {PAYMENTS_PER_TRADE_MAX} payments")
    converted = (amount * fx_rate + FX_SCALE // 2) // FX_SCALE
    cap = _cap(t, storage["tolerance_bp"])
    if t["paid"] + converted > cap:
        _fail(f"payments against trade {trade_ref} would total {t['paid'] + converted} but it was "
              f"declared at {t['amount']} (at most {cap} with the tolerance), in {t['currency']} "
              f"minor units; pay at most {cap - t['paid']} or ask customs to amend the declaration")
    qkey = ["quota", payer_bank, currency]
    q = storage.get(qkey)
    if q is None:
        _fail(f"the payer bank has no quota in {currency}; ask the admin to set one")
    if q["used"] + amount > q["limit"]:
        _fail(f"the payer bank's {currency} quota is exhausted: {q['limit'] - q['used']} left of {q['limit']}")
    q["used"] += amount
    storage[qkey] = q
    t["paid"] += converted
    t["payments"].append(ref)
    storage[tkey] = t
    storage[["pay", ref]] = {"trade_ref": trade_ref, "payer_bank": payer_bank,
                             "payee_bank": payee_bank, "currency": currency, "amount": amount,
                             "fx_rate": fx_rate, "converted": converted,
                             "trade_currency": t["currency"], "purpose": purpose,
                             "status": "pending", "flagged": False, "flag_reason": "",
                             "reason": "", "height": ctx.block_height}
    emit("PaymentSubmitted", ref=ref, trade_ref=trade_ref, payer_bank=payer_bank,
         payee_bank=payee_bank, currency=currency, amount=amount, fx_rate=fx_rate,
         converted=converted, purpose=purpose)
    return converted


def settle(ref):
    """The payee bank confirms it received the funds."""
    p = _payment(ref)
    if ctx.sender != p["payee_bank"]:
        _fail("only the payee bank may settle this payment")
    if p["status"] != "pending":
        _fail(f"payment {ref} is already {p['status']}")
    if p["flagged"]:
        _fail(f"payment {ref} is held by a regulator ({p['flag_reason']}); it can be settled once unflagged")
    tkey = ["trade", p["trade_ref"]]
    t = storage[tkey]
    t["settled"] += p["converted"]
    storage[tkey] = t
    p["status"] = "settled"
    storage[["pay", ref]] = p
    emit("PaymentSettled", ref=ref, trade_ref=p["trade_ref"], payee_bank=ctx.sender,
         amount=p["amount"], currency=p["currency"])


def reject(ref, reason):
    """The payee bank or a regulator refuses a pending payment; its quota is given back."""
    p = _payment(ref)
    if ctx.sender != p["payee_bank"] and not _is_regulator(ctx.sender):
        _fail("only the payee bank or a regulator may reject this payment")
    _check_text(reason, "reason", REASON_CHARS_MAX)
    if p["status"] != "pending":
        _fail(f"payment {ref} is already {p['status']}")
    tkey = ["trade", p["trade_ref"]]
    t = storage[tkey]
    t["paid"] -= p["converted"]
    storage[tkey] = t
    qkey = ["quota", p["payer_bank"], p["currency"]]
    q = storage[qkey]
    q["used"] -= p["amount"]
    storage[qkey] = q
    p["status"] = "rejected"
    p["reason"] = reason
    storage[["pay", ref]] = p
    emit("PaymentRejected", ref=ref, trade_ref=p["trade_ref"], by=ctx.sender, reason=reason)


def flag(ref, reason):
    """A regulator marks a payment for investigation; a pending one is held."""
    _only_regulator()
    p = _payment(ref)
    _check_text(reason, "reason", REASON_CHARS_MAX)
    if p["status"] == "rejected":
        _fail(f"payment {ref} was rejected; there is nothing to hold")
    if p["flagged"]:
        _fail(f"payment {ref} is already flagged")
    p["flagged"] = True
    p["flag_reason"] = reason
    storage[["pay", ref]] = p
    emit("PaymentFlagged", ref=ref, trade_ref=p["trade_ref"], by=ctx.sender, reason=reason,
         status=p["status"])


def unflag(ref):
    """A regulator lifts its flag (a held pending payment may then be settled)."""
    _only_regulator()
    p = _payment(ref)
    if not p["flagged"]:
        _fail(f"payment {ref} is not flagged")
    p["flagged"] = False
    storage[["pay", ref]] = p
    emit("PaymentUnflagged", ref=ref, by=ctx.sender)


# ---- views ------------------------------------------------------------------------------------

def view_payment(ref):
    p = _payment(ref)
    p["ref"] = ref
    return p


def view_trade(ref):
    """The trade, with `cap` (declared + tolerance), `remaining` and `matched` (settled
    payments cover the declared amount, within the tolerance)."""
    t = _trade(ref, "ref")
    cap = _cap(t, storage["tolerance_bp"])
    t["ref"] = ref
    t["cap"] = cap
    t["remaining"] = cap - t["paid"]
    t["matched"] = t["settled"] >= t["amount"] and t["settled"] <= cap
    return t


def view_payments_for_trade(trade_ref):
    t = _trade(trade_ref, "trade_ref")
    out = []
    for ref in t["payments"]:
        p = storage[["pay", ref]]
        p["ref"] = ref
        out.append(p)
    return out


def view_quota_of(institution):
    """{currency: {limit, used, remaining}} for a bank."""
    out = {}
    for currency in storage.get(["quotas", institution], []):
        q = storage[["quota", institution, currency]]
        out[currency] = {"limit": q["limit"], "used": q["used"], "remaining": q["limit"] - q["used"]}
    return out


def view_institution(address):
    return storage.get(["inst", address])


def view_tolerance_bp():
    return storage["tolerance_bp"]
