"""Payment: a two-tier digital currency with dual-offline payments.

Tier one is the issuer (the central bank): it issues currency into the reserves of the
operators (commercial banks) and destroys what they retire. Tier two is the operators:
they open wallets for their customers (tier 1..4, with a KYC commitment: a 32-byte hash of
the identity record the bank keeps off chain; tier 4 is anonymous) and exchange reserve
for wallet balance and back. Wallets pay each other within per-tier limits; a payment at
or above the large-amount threshold needs both parties identified and emits a
`LargeTransfer` event carrying both KYC commitments for the regulator, smaller ones emit a
pseudonymous `Transfer`. The regulator freezes and unfreezes wallets.

Dual offline: a wallet locks part of its balance for a device (`open_offline`); while both
devices are offline the payer's device signs vouchers the payee keeps; anyone may later
`settle_offline` them. The voucher's signed message is

    b"chainnode/voucher/v1" + contract (20) + payer (20) + payee (20)
        + purse.to_bytes(8, "big") + amount.to_bytes(8, "big") + counter.to_bytes(8, "big")

`purse` is the purse number `open_offline` returned (so a voucher of an old purse cannot
be replayed against a new one). Settling pays every good voucher and reports every bad one
in an event; it fails as a whole only on malformed input or when the purse cannot be
settled at all.

Amounts are integers in fen (0.01 yuan). Invariant: total supply == every wallet balance +
every operator reserve + every open purse's unspent locked amount.
"""

DAY_MS = 86_400_000
AMOUNT_MAX = 1_000_000_000_000_000            # 10 trillion yuan in fen: any single amount
SUPPLY_MAX = 1_000_000_000_000_000_000        # fits in int64 with room to spare
COUNTER_MAX = 9_223_372_036_854_775_807       # 2**63 - 1: counters fit in 8 bytes and in storage
OFFLINE_BLOCKS_MAX = 10_000_000               # how far ahead an offline purse may expire
VOUCHERS_MAX = 200                            # vouchers per settle_offline call
MEMO_CHARS_MAX = 140
NAME_CHARS_MAX = 128
REASON_CHARS_MAX = 256
DEVICE_KEY_BYTES_MIN = 32
DEVICE_KEY_BYTES_MAX = 65
SIGNATURE_BYTES_MAX = 256
VOUCHER_DOMAIN = b"chainnode/voucher/v1"

# Default limits per tier, in fen: (balance_max, payment_max, daily_max).
TIER1_LIMITS = (100_000_000_000, 10_000_000_000, 10_000_000_000)  # 1 bn / 100 m / 100 m yuan
TIER2_LIMITS = (50_000_000, 5_000_000, 10_000_000)               # 500,000 / 50,000 / 100,000 yuan
TIER3_LIMITS = (2_000_000, 500_000, 1_000_000)                   # 20,000 / 5,000 / 10,000 yuan
TIER4_LIMITS = (1_000_000, 200_000, 500_000)                     # 10,000 / 2,000 / 5,000 yuan
LARGE_THRESHOLD = 5_000_000                                      # 50,000 yuan


# ---- argument checks (each failure says what is wrong and what to do) -------------------

def _fail(message):
    raise ContractError(message)


def _check_address(value, what):
    if not (isinstance(value, bytes) and len(value) == 20):
        _fail(f"{what} must be a 20-byte address")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_amount(value, what):
    if not _is_int(value):
        _fail(f"{what} must be a whole number of fen (an integer; 1 yuan = 100 fen)")
    if value <= 0:
        _fail(f"{what} must be positive")
    if value > AMOUNT_MAX:
        _fail(f"{what} is larger than the maximum of {AMOUNT_MAX} fen")


def _check_text(value, what, max_chars, allow_empty):
    if not isinstance(value, str):
        _fail(f"{what} must be text")
    if len(value) > max_chars:
        _fail(f"{what} is longer than {max_chars} characters")
    if not allow_empty and len(value) == 0:
        _fail(f"{what} must not be empty")


def _check_tier(tier):
    if not _is_int(tier) or tier < 1 or tier > 4:
        _fail("tier must be 1, 2, 3 or 4 (4 is the anonymous tier)")


def _check_kyc(tier, kyc_hash):
    if tier == 4:
        if kyc_hash is None or kyc_hash == b"":
            return b""
    if not (isinstance(kyc_hash, bytes) and len(kyc_hash) == 32):
        _fail("kyc_hash must be the 32-byte hash of the identity record the bank keeps "
              "(only tier 4, the anonymous tier, may leave it empty)")
    return kyc_hash


# ---- roles and records --------------------------------------------------------------------

def _only_issuer():
    if ctx.sender != storage["issuer"]:
        _fail("only the issuer (the central bank) may do this")


def _only_regulator():
    if ctx.sender != storage["regulator"]:
        _fail("only the regulator may do this")


def _active_operator(address):
    op = storage.get(["op", address])
    if op is None or not op["active"]:
        _fail("only an active operator (a bank added by the issuer) may do this")
    return op


def _wallet(address, what):
    w = storage.get(["w", address])
    if w is None:
        _fail(f"{what} is not a registered wallet; a bank (operator) must register it first")
    return w


def _not_frozen(w, what):
    if w["frozen"]:
        _fail(f"{what} is frozen by the regulator; contact the wallet's bank")


def _limits(tier):
    return storage[["limits", tier]]


def _today():
    return ctx.block_timestamp_ms // DAY_MS


def _spent_today(w):
    if w["day"] == _today():
        return w["spent"]
    return 0


def _check_can_pay(w, amount):
    """The payer's tier limits on a single payment and on the day's total."""
    lim = _limits(w["tier"])
    if amount > lim[1]:
        _fail(f"amount exceeds the single-payment limit of {lim[1]} fen for a tier {w['tier']} "
              f"wallet; pay in parts or ask your bank to upgrade the wallet")
    spent = _spent_today(w)
    if spent + amount > lim[2]:
        _fail(f"amount exceeds the daily limit of {lim[2]} fen for a tier {w['tier']} wallet "
              f"({spent} fen already paid today); try again tomorrow or upgrade the wallet")


def _record_spent(w, amount):
    day = _today()
    if w["day"] != day:
        w["day"] = day
        w["spent"] = 0
    w["spent"] += amount


def _room(w):
    """How much more the wallet may hold under its tier's balance limit."""
    return _limits(w["tier"])[0] - w["balance"]


def _check_can_receive(w, amount, what):
    _not_frozen(w, what)
    if amount > _room(w):
        _fail(f"{what} would exceed its balance limit of {_limits(w['tier'])[0]} fen for a tier "
              f"{w['tier']} wallet; it should redeem some balance or upgrade its tier")


def _set_limits(tier, balance_max, payment_max, daily_max):
    storage[["limits", tier]] = [balance_max, payment_max, daily_max]
    emit("TierLimitsSet", tier=tier, balance_max=balance_max, payment_max=payment_max,
         daily_max=daily_max)


# ---- deployment and roles -----------------------------------------------------------------

def init(issuer=None, regulator=None):
    if issuer is None:
        issuer = ctx.sender
    if regulator is None:
        regulator = ctx.sender
    _check_address(issuer, "issuer")
    _check_address(regulator, "regulator")
    storage["issuer"] = issuer
    storage["regulator"] = regulator
    storage["supply"] = 0
    storage["large"] = LARGE_THRESHOLD
    emit("PaymentSystemCreated", issuer=issuer, regulator=regulator)
    _set_limits(1, TIER1_LIMITS[0], TIER1_LIMITS[1], TIER1_LIMITS[2])
    _set_limits(2, TIER2_LIMITS[0], TIER2_LIMITS[1], TIER2_LIMITS[2])
    _set_limits(3, TIER3_LIMITS[0], TIER3_LIMITS[1], TIER3_LIMITS[2])
    _set_limits(4, TIER4_LIMITS[0], TIER4_LIMITS[1], TIER4_LIMITS[2])
    emit("LargeThresholdSet", amount=LARGE_THRESHOLD)


def set_regulator(address):
    """The issuer hands the regulator role to another address."""
    _only_issuer()
    _check_address(address, "address")
    storage["regulator"] = address
    emit("RegulatorChanged", regulator=address)


def add_operator(address, name):
    """The issuer admits a bank as operator (or re-activates a removed one)."""
    _only_issuer()
    _check_address(address, "address")
    _check_text(name, "name", NAME_CHARS_MAX, False)
    require(address != storage["issuer"], "the issuer cannot also be an operator")
    require(not (["w", address] in storage), "this address is a wallet; an operator needs its own address")
    key = ["op", address]
    op = storage.get(key)
    if op is not None and op["active"]:
        _fail("this address is already an active operator")
    if op is None:
        op = {"name": name, "active": True, "reserve": 0}
    else:
        op["name"] = name
        op["active"] = True
    storage[key] = op
    emit("OperatorAdded", operator=address, name=name)


def remove_operator(address):
    """The issuer suspends an operator: no more issuance, registration or exchange.

    Its wallets keep working; they may still redeem into its reserve and it may still
    retire its reserve to the issuer."""
    _only_issuer()
    _check_address(address, "address")
    key = ["op", address]
    op = storage.get(key)
    if op is None or not op["active"]:
        _fail("this address is not an active operator")
    op["active"] = False
    storage[key] = op
    emit("OperatorRemoved", operator=address, reserve=op["reserve"])


def register_wallet(wallet, tier, kyc_hash):
    """An operator opens a wallet for a customer; the wallet belongs to that operator."""
    _active_operator(ctx.sender)
    _check_address(wallet, "wallet")
    _check_tier(tier)
    kyc = _check_kyc(tier, kyc_hash)
    key = ["w", wallet]
    if key in storage:
        _fail("this wallet is already registered; use update_wallet to change its tier")
    if ["op", wallet] in storage or wallet == storage["issuer"]:
        _fail("an operator's or the issuer's address cannot be a wallet")
    storage[key] = {"operator": ctx.sender, "tier": tier, "kyc": kyc, "balance": 0,
                    "frozen": False, "day": 0, "spent": 0, "purses": 0}
    emit("WalletRegistered", wallet=wallet, operator=ctx.sender, tier=tier)


def update_wallet(wallet, tier, kyc_hash):
    """The wallet's operator changes its tier (e.g. after identifying the customer)."""
    _active_operator(ctx.sender)
    _check_address(wallet, "wallet")
    _check_tier(tier)
    kyc = _check_kyc(tier, kyc_hash)
    key = ["w", wallet]
    w = _wallet(wallet, "wallet")
    if w["operator"] != ctx.sender:
        _fail("only the bank that registered this wallet may change it")
    w["tier"] = tier
    w["kyc"] = kyc
    storage[key] = w
    emit("WalletUpdated", wallet=wallet, operator=ctx.sender, tier=tier)


# ---- issuance and exchange ----------------------------------------------------------------

def issue(operator, amount):
    """The issuer creates currency into an operator's reserve."""
    _only_issuer()
    _check_address(operator, "operator")
    _check_amount(amount, "amount")
    key = ["op", operator]
    op = storage.get(key)
    if op is None or not op["active"]:
        _fail("currency can only be issued to an active operator")
    supply = storage["supply"] + amount
    if supply > SUPPLY_MAX:
        _fail(f"issuing this would take the total supply over {SUPPLY_MAX} fen")
    op["reserve"] += amount
    storage[key] = op
    storage["supply"] = supply
    emit("Issued", operator=operator, amount=amount, supply=supply)
    return op["reserve"]


def retire(amount):
    """An operator returns reserve to the issuer, which destroys it."""
    key = ["op", ctx.sender]
    op = storage.get(key)
    if op is None:
        _fail("only an operator may retire currency")
    _check_amount(amount, "amount")
    if amount > op["reserve"]:
        _fail(f"the operator's reserve holds only {op['reserve']} fen")
    op["reserve"] -= amount
    supply = storage["supply"] - amount
    storage[key] = op
    storage["supply"] = supply
    emit("Retired", operator=ctx.sender, amount=amount, supply=supply)
    return op["reserve"]


def exchange(wallet, amount):
    """An operator moves reserve into a wallet it registered (a customer buys currency)."""
    okey = ["op", ctx.sender]
    op = _active_operator(ctx.sender)
    _check_address(wallet, "wallet")
    _check_amount(amount, "amount")
    wkey = ["w", wallet]
    w = _wallet(wallet, "wallet")
    if w["operator"] != ctx.sender:
        _fail("an operator may only exchange into wallets it registered")
    if amount > op["reserve"]:
        _fail(f"the operator's reserve holds only {op['reserve']} fen; ask the issuer to issue more")
    _check_can_receive(w, amount, "the wallet")
    op["reserve"] -= amount
    w["balance"] += amount
    storage[okey] = op
    storage[wkey] = w
    emit("Exchanged", operator=ctx.sender, wallet=wallet, amount=amount)
    return w["balance"]


def redeem(amount):
    """A wallet returns balance to its operator's reserve (a customer cashes out)."""
    wkey = ["w", ctx.sender]
    w = _wallet(ctx.sender, "your address")
    _not_frozen(w, "your wallet")
    _check_amount(amount, "amount")
    if amount > w["balance"]:
        _fail(f"your balance is only {w['balance']} fen")
    okey = ["op", w["operator"]]
    op = storage[okey]
    w["balance"] -= amount
    op["reserve"] += amount
    storage[wkey] = w
    storage[okey] = op
    emit("Redeemed", wallet=ctx.sender, operator=w["operator"], amount=amount)
    return w["balance"]


# ---- payments -----------------------------------------------------------------------------

def transfer(to, amount, memo=""):
    """Pay another wallet. Large payments need both wallets identified (tier 1..3)."""
    sender = ctx.sender
    _check_address(to, "the recipient")
    _check_amount(amount, "amount")
    _check_text(memo, "memo", MEMO_CHARS_MAX, True)
    if to == sender:
        _fail("you cannot pay your own wallet")
    fkey = ["w", sender]
    frm = _wallet(sender, "your address")
    _not_frozen(frm, "your wallet")
    tkey = ["w", to]
    dst = _wallet(to, "the recipient")
    if amount > frm["balance"]:
        _fail(f"insufficient balance: you have {frm['balance']} fen")
    _check_can_pay(frm, amount)
    _check_can_receive(dst, amount, "the recipient's wallet")
    large = amount >= storage["large"]
    if large:
        if frm["tier"] == 4:
            _fail("a large payment needs an identified wallet: ask your bank to upgrade it to tier 1, 2 or 3")
        if dst["tier"] == 4:
            _fail("a large payment can only go to an identified wallet (tier 1, 2 or 3); the recipient should ask its bank to upgrade it")
    frm["balance"] -= amount
    _record_spent(frm, amount)
    dst["balance"] += amount
    storage[fkey] = frm
    storage[tkey] = dst
    if large:
        emit("LargeTransfer", frm=sender, to=to, amount=amount, memo=memo,
             frm_kyc=frm["kyc"], to_kyc=dst["kyc"], frm_operator=frm["operator"],
             to_operator=dst["operator"])
    else:
        emit("Transfer", frm=sender, to=to, amount=amount, memo=memo)
    return frm["balance"]


# ---- the regulator --------------------------------------------------------------------------

def freeze(wallet, reason):
    _only_regulator()
    _check_address(wallet, "wallet")
    _check_text(reason, "reason", REASON_CHARS_MAX, False)
    key = ["w", wallet]
    w = _wallet(wallet, "wallet")
    if w["frozen"]:
        _fail("this wallet is already frozen")
    w["frozen"] = True
    storage[key] = w
    emit("WalletFrozen", wallet=wallet, reason=reason)


def unfreeze(wallet):
    _only_regulator()
    _check_address(wallet, "wallet")
    key = ["w", wallet]
    w = _wallet(wallet, "wallet")
    if not w["frozen"]:
        _fail("this wallet is not frozen")
    w["frozen"] = False
    storage[key] = w
    emit("WalletUnfrozen", wallet=wallet)


# ---- the issuer's settings ------------------------------------------------------------------

def set_tier_limits(tier, balance_max, payment_max, daily_max):
    _only_issuer()
    _check_tier(tier)
    _check_amount(balance_max, "balance_max")
    _check_amount(payment_max, "payment_max")
    _check_amount(daily_max, "daily_max")
    if payment_max > daily_max:
        _fail("payment_max cannot be larger than daily_max")
    _set_limits(tier, balance_max, payment_max, daily_max)


def set_large_threshold(amount):
    _only_issuer()
    _check_amount(amount, "amount")
    storage["large"] = amount
    emit("LargeThresholdSet", amount=amount)


# ---- dual offline -----------------------------------------------------------------------------

def _voucher_message(payer, payee, purse, amount, counter):
    return (VOUCHER_DOMAIN + ctx.contract + payer + payee + purse.to_bytes(8, "big")
            + amount.to_bytes(8, "big") + counter.to_bytes(8, "big"))


def open_offline(device_public_key, amount, expiry_height):
    """Lock `amount` of your balance for an offline device until `expiry_height`.

    Counts as a payment against your tier's single and daily limits, and must stay below
    the large-amount threshold (offline payments are small by design). Returns the purse
    number the device must sign into its vouchers."""
    wallet = ctx.sender
    wkey = ["w", wallet]
    w = _wallet(wallet, "your address")
    _not_frozen(w, "your wallet")
    if not (isinstance(device_public_key, bytes)
            and len(device_public_key) >= DEVICE_KEY_BYTES_MIN
            and len(device_public_key) <= DEVICE_KEY_BYTES_MAX):
        _fail("device_public_key must be the device's public key (bytes, as the chain's crypto suite encodes it)")
    _check_amount(amount, "amount")
    if not _is_int(expiry_height):
        _fail("expiry_height must be a block height (an integer)")
    if expiry_height <= ctx.block_height:
        _fail(f"expiry_height must be after the current height {ctx.block_height}")
    if expiry_height > ctx.block_height + OFFLINE_BLOCKS_MAX:
        _fail(f"expiry_height may be at most {OFFLINE_BLOCKS_MAX} blocks ahead")
    pkey = ["off", wallet]
    if pkey in storage:
        _fail("this wallet already has an open offline purse; close it (after its expiry) before opening another")
    if amount > w["balance"]:
        _fail(f"insufficient balance: you have {w['balance']} fen")
    if amount >= storage["large"]:
        _fail(f"an offline purse must stay below the large-payment threshold of {storage['large']} fen")
    _check_can_pay(w, amount)
    purse = w["purses"] + 1
    w["purses"] = purse
    w["balance"] -= amount
    _record_spent(w, amount)
    storage[wkey] = w
    storage[pkey] = {"purse": purse, "device": device_public_key, "locked": amount, "spent": 0,
                     "expiry": expiry_height, "opened": ctx.block_height}
    emit("OfflineOpened", wallet=wallet, purse=purse, device=device_public_key, amount=amount,
         expiry_height=expiry_height)
    return purse


def _voucher_fields(i, v):
    if not isinstance(v, dict):
        _fail(f"voucher {i} must be a dict with payee, amount, counter and signature")
    payee = v.get("payee")
    amount = v.get("amount")
    counter = v.get("counter")
    sig = v.get("signature")
    _check_address(payee, f"voucher {i}: payee")
    _check_amount(amount, f"voucher {i}: amount")
    if not _is_int(counter) or counter < 1 or counter > COUNTER_MAX:
        _fail(f"voucher {i}: counter must be an integer from 1 to {COUNTER_MAX}")
    if not isinstance(sig, bytes) or len(sig) == 0 or len(sig) > SIGNATURE_BYTES_MAX:
        _fail(f"voucher {i}: signature must be the device's signature (bytes)")
    return payee, amount, counter, sig


def settle_offline(payer_wallet, vouchers):
    """Pay the vouchers a payer's device signed. Anyone may call it (usually the payee).

    Vouchers are processed in the order given. Each one is paid (`OfflinePayment`), or
    reported and skipped: `OfflineDoubleSpend` when the payer's device signed it but it
    reuses a settled counter for a different payment or goes beyond the locked amount;
    `OfflineVoucherRejected` when it is not a valid voucher of this purse (bad signature),
    is a duplicate of a settled one, is out of order, or the payee cannot be paid now (not
    registered, frozen, at its balance limit: such a voucher may be settled again later).
    The call fails as a whole only for malformed input, an unknown payer, a payer without an
    open purse, or a frozen payer. Returns a summary."""
    _check_address(payer_wallet, "payer_wallet")
    if not isinstance(vouchers, list) or len(vouchers) == 0:
        _fail("vouchers must be a non-empty list")
    if len(vouchers) > VOUCHERS_MAX:
        _fail(f"at most {VOUCHERS_MAX} vouchers per settlement; split them into several calls")
    payer = _wallet(payer_wallet, "payer_wallet")
    if payer["frozen"]:
        _fail("the payer's wallet is frozen by the regulator; its vouchers can be settled once it is unfrozen")
    pkey = ["off", payer_wallet]
    p = storage.get(pkey)
    if p is None:
        _fail("the payer has no open offline purse (never opened, or already closed); these vouchers can no longer be settled")
    checked = [_voucher_fields(i, v) for i, v in enumerate(vouchers)]
    purse = p["purse"]
    device = p["device"]
    last = 0
    paid = 0
    paid_amount = 0
    double_spends = 0
    rejected = 0
    for payee, amount, counter, sig in checked:
        msg = _voucher_message(payer_wallet, payee, purse, amount, counter)
        if not verify_signature(device, msg, sig):
            rejected += 1
            emit("OfflineVoucherRejected", payer=payer_wallet, purse=purse, counter=counter,
                 payee=payee, amount=amount,
                 reason="bad signature: not signed by this purse's device for this payer, payee, amount and purse")
            continue
        ckey = ["ctr", payer_wallet, purse, counter]
        prev = storage.get(ckey)
        if prev is not None:
            if prev[0] == payee and prev[1] == amount:
                rejected += 1
                emit("OfflineVoucherRejected", payer=payer_wallet, purse=purse, counter=counter,
                     payee=payee, amount=amount, reason="already settled")
            else:
                double_spends += 1
                emit("OfflineDoubleSpend", payer=payer_wallet, purse=purse, counter=counter,
                     payee=payee, amount=amount,
                     reason="counter reused: the device already signed this counter for another payment")
            continue
        if counter <= last:
            rejected += 1
            emit("OfflineVoucherRejected", payer=payer_wallet, purse=purse, counter=counter,
                 payee=payee, amount=amount,
                 reason="counters in one settlement must be strictly increasing; settle this voucher separately")
            continue
        last = counter
        if p["spent"] + amount > p["locked"]:
            double_spends += 1
            emit("OfflineDoubleSpend", payer=payer_wallet, purse=purse, counter=counter,
                 payee=payee, amount=amount,
                 reason=f"exceeds the locked amount: {p['locked'] - p['spent']} fen of {p['locked']} left")
            continue
        why = ""
        tkey = ["w", payee]
        dst = storage.get(tkey)
        if payee == payer_wallet:
            why = "a payer cannot pay its own wallet"
        elif dst is None:
            why = "the payee is not a registered wallet"
        elif dst["frozen"]:
            why = "the payee's wallet is frozen; settle again once it is unfrozen"
        elif amount > _room(dst):
            why = "the payee's wallet is at its balance limit; settle again after it redeems or upgrades"
        if why != "":
            rejected += 1
            emit("OfflineVoucherRejected", payer=payer_wallet, purse=purse, counter=counter,
                 payee=payee, amount=amount, reason=why)
            continue
        p["spent"] += amount
        dst["balance"] += amount
        storage[tkey] = dst
        storage[ckey] = [payee, amount]
        paid += 1
        paid_amount += amount
        emit("OfflinePayment", payer=payer_wallet, purse=purse, counter=counter, payee=payee,
             amount=amount)
    if paid > 0:
        storage[pkey] = p
    return {"paid": paid, "paid_amount": paid_amount, "double_spends": double_spends,
            "rejected": rejected, "left": p["locked"] - p["spent"]}


def close_offline():
    """After the purse's expiry height, return what the device did not spend to the wallet.

    Vouchers not settled by then can no longer be paid: payees settle before expiry."""
    wallet = ctx.sender
    wkey = ["w", wallet]
    w = _wallet(wallet, "your address")
    pkey = ["off", wallet]
    p = storage.get(pkey)
    if p is None:
        _fail("this wallet has no open offline purse")
    if ctx.block_height < p["expiry"]:
        _fail(f"the offline purse can be closed from height {p['expiry']} (its expiry); now is {ctx.block_height}")
    left = p["locked"] - p["spent"]
    w["balance"] += left
    storage[wkey] = w
    del storage[pkey]
    emit("OfflineClosed", wallet=wallet, purse=p["purse"], returned=left, spent=p["spent"])
    return left


# ---- views ----------------------------------------------------------------------------------

def view_balance_of(wallet):
    w = storage.get(["w", wallet])
    if w is None:
        return 0
    return w["balance"]


def view_reserve_of(operator):
    op = storage.get(["op", operator])
    if op is None:
        return 0
    return op["reserve"]


def view_total_supply():
    return storage["supply"]


def view_wallet_info(wallet):
    """The wallet's record (operator, tier, kyc, balance, frozen, spent_today, purses) or None."""
    w = storage.get(["w", wallet])
    if w is None:
        return None
    return {"operator": w["operator"], "tier": w["tier"], "kyc": w["kyc"], "balance": w["balance"],
            "frozen": w["frozen"], "spent_today": _spent_today(w), "purses": w["purses"],
            "offline": ["off", wallet] in storage}


def view_offline_info(wallet):
    """The open purse (purse, device, locked, spent, left, expiry, opened) or None."""
    p = storage.get(["off", wallet])
    if p is None:
        return None
    p["left"] = p["locked"] - p["spent"]
    return p


def view_voucher_settled(payer_wallet, purse, counter):
    """[payee, amount] of the settled voucher with this counter, or None."""
    return storage.get(["ctr", payer_wallet, purse, counter])


def view_operator(operator):
    return storage.get(["op", operator])


def view_tier_limits(tier):
    _check_tier(tier)
    lim = _limits(tier)
    return {"tier": tier, "balance_max": lim[0], "payment_max": lim[1], "daily_max": lim[2]}


def view_large_threshold():
    return storage["large"]


def view_roles():
    return {"issuer": storage["issuer"], "regulator": storage["regulator"]}
