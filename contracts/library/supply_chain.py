"""Supply chain: one code per batch, through every hand.

The admin registers participants with a role: producer, processor, logistics, retailer,
customs or inspector. A producer creates a batch under a unique code; the holder hands it
over to another participant, who must `receive` it before it is theirs; inspectors and
customs attach records (hashes of reports kept off chain); the holder may split a batch
into smaller ones whose quantities add up to the parent's; the batch's producer or the
regulator recalls a batch, which recalls every batch split from it too.

Every step is kept in the batch's history (`view_history`), which for a split batch starts
with its parent's history up to the split, so a code on a shop shelf tells its whole story.
"""

ROLES = ("producer", "processor", "logistics", "retailer", "customs", "inspector")
RECORD_KINDS = ("inspection", "certificate", "clearance")
CODE_CHARS_MAX = 64
TEXT_CHARS_MAX = 128
REASON_CHARS_MAX = 256
QUANTITY_MAX = 1_000_000_000_000_000
SPLIT_MAX = 50          # new batches per split
SPLIT_DEPTH_MAX = 8     # splits of splits
FAMILY_MAX = 256        # batches descending from one original batch (bounds a recall)


# ---- argument checks -------------------------------------------------------------------

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


def _check_code(code, what):
    if not isinstance(code, str) or len(code) == 0 or len(code) > CODE_CHARS_MAX:
        _fail(f"{what} must be a batch code: text of 1 to {CODE_CHARS_MAX} characters")


def _check_quantity(value, what):
    if not _is_int(value) or value <= 0:
        _fail(f"{what} must be a positive whole number (in the product's smallest unit, e.g. grams)")
    if value > QUANTITY_MAX:
        _fail(f"{what} is larger than {QUANTITY_MAX}")


def _check_hash(value, what):
    if value is None:
        return None
    if not (isinstance(value, bytes) and len(value) == 32):
        _fail(f"{what} must be the 32-byte hash of the off-chain document (or None)")
    return value


# ---- records -----------------------------------------------------------------------------

def _participant(address):
    p = storage.get(["p", address])
    if p is None or not p["active"]:
        return None
    return p


def _caller_role():
    p = _participant(ctx.sender)
    if p is None:
        _fail("your address is not a registered participant; ask the admin to register it")
    return p["role"]


def _batch(code):
    _check_code(code, "code")
    b = storage.get(["b", code])
    if b is None:
        _fail(f"there is no batch with code {code}")
    return b


def _log(code, b, kind, fields):
    """Append one entry to the batch's history (b is written back by the caller)."""
    entry = {"batch": code, "kind": kind, "by": ctx.sender, "height": ctx.block_height,
             "time_ms": ctx.block_timestamp_ms}
    entry.update(fields)
    storage[["h", code, b["n"]]] = entry
    b["n"] += 1


def _movable(b, code):
    if b["recalled"]:
        _fail(f"batch {code} has been recalled: it can no longer be handed over or split")
    if b["status"] == "split":
        _fail(f"batch {code} was split into other batches; use their codes")
    if b["pending"] is not None:
        _fail(f"batch {code} is waiting to be received by its next holder; cancel the hand-over first")
    if b["holder"] != ctx.sender:
        _fail(f"only the current holder of batch {code} may do this")


# ---- deployment and participants ------------------------------------------------------------

def init(admin=None, regulator=None):
    if admin is None:
        admin = ctx.sender
    if regulator is None:
        regulator = ctx.sender
    _check_address(admin, "admin")
    _check_address(regulator, "regulator")
    storage["admin"] = admin
    storage["regulator"] = regulator
    emit("SupplyChainCreated", admin=admin, regulator=regulator)


def _only_admin():
    if ctx.sender != storage["admin"]:
        _fail("only the admin may do this")


def set_regulator(address):
    _only_admin()
    _check_address(address, "address")
    storage["regulator"] = address
    emit("RegulatorChanged", regulator=address)


def register_participant(address, role, name):
    """The admin registers a participant (or re-registers a removed one) with a role."""
    _only_admin()
    _check_address(address, "address")
    if not (isinstance(role, str) and role in ROLES):
        _fail("role must be one of: producer, processor, logistics, retailer, customs, inspector")
    _check_text(name, "name", TEXT_CHARS_MAX)
    key = ["p", address]
    p = storage.get(key)
    if p is not None and p["active"]:
        _fail("this address is already a registered participant; remove it first to change its role")
    storage[key] = {"role": role, "name": name, "active": True}
    emit("ParticipantRegistered", participant=address, role=role, name=name)


def remove_participant(address):
    """The admin removes a participant: it can no longer act or receive batches."""
    _only_admin()
    _check_address(address, "address")
    key = ["p", address]
    p = storage.get(key)
    if p is None or not p["active"]:
        _fail("this address is not a registered participant")
    p["active"] = False
    storage[key] = p
    emit("ParticipantRemoved", participant=address)


# ---- batches -----------------------------------------------------------------------------

def create_batch(code, product, origin, quantity, meta_hash):
    """A producer registers a new batch it holds."""
    if _caller_role() != "producer":
        _fail("only a producer may create batches")
    _check_code(code, "code")
    _check_text(product, "product", TEXT_CHARS_MAX)
    _check_text(origin, "origin", TEXT_CHARS_MAX)
    _check_quantity(quantity, "quantity")
    meta = _check_hash(meta_hash, "meta_hash")
    key = ["b", code]
    if key in storage:
        _fail(f"batch code {code} is already in use; every batch needs a new code")
    b = {"product": product, "origin": origin, "quantity": quantity, "producer": ctx.sender,
         "holder": ctx.sender, "pending": None, "status": "active", "recalled": False,
         "parent": None, "parent_n": 0, "children": [], "root": code, "depth": 0, "family": 1,
         "n": 0}
    _log(code, b, "created", {"product": product, "origin": origin, "quantity": quantity,
                              "meta_hash": meta})
    storage[key] = b
    emit("BatchCreated", code=code, product=product, origin=origin, quantity=quantity,
         producer=ctx.sender, meta_hash=meta)


def hand_over(code, to, location, meta_hash):
    """The holder hands the batch to another participant, who must `receive` it."""
    _caller_role()
    b = _batch(code)
    _movable(b, code)
    _check_address(to, "to")
    _check_text(location, "location", TEXT_CHARS_MAX)
    meta = _check_hash(meta_hash, "meta_hash")
    if to == ctx.sender:
        _fail("you already hold this batch")
    if _participant(to) is None:
        _fail("the recipient is not a registered participant; ask the admin to register it")
    b["pending"] = to
    _log(code, b, "handed_over", {"to": to, "location": location, "meta_hash": meta})
    storage[["b", code]] = b
    emit("HandedOver", code=code, frm=ctx.sender, to=to, location=location, meta_hash=meta)


def cancel_hand_over(code):
    """The holder takes back a hand-over its recipient has not received yet."""
    _caller_role()
    b = _batch(code)
    if b["pending"] is None:
        _fail(f"batch {code} has no hand-over waiting")
    if b["holder"] != ctx.sender:
        _fail(f"only the current holder of batch {code} may cancel its hand-over")
    to = b["pending"]
    b["pending"] = None
    _log(code, b, "hand_over_cancelled", {"to": to})
    storage[["b", code]] = b
    emit("HandOverCancelled", code=code, holder=ctx.sender, to=to)


def receive(code):
    """The participant a batch was handed to confirms it has it."""
    _caller_role()
    b = _batch(code)
    if b["pending"] != ctx.sender:
        _fail(f"batch {code} is not being handed to you")
    frm = b["holder"]
    b["holder"] = ctx.sender
    b["pending"] = None
    _log(code, b, "received", {"frm": frm})
    storage[["b", code]] = b
    emit("Received", code=code, holder=ctx.sender, frm=frm)


def _may_record(role, kind):
    if kind == "clearance":
        return role == "customs"
    return role == "inspector" or role == "customs"


def add_record(code, kind, data_hash):
    """An inspector (inspection, certificate) or customs (also clearance) attaches a record."""
    role = _caller_role()
    if role != "inspector" and role != "customs":
        _fail("only inspectors and customs may add records")
    if not (isinstance(kind, str) and kind in RECORD_KINDS):
        _fail("kind must be one of: inspection, certificate, clearance")
    if not _may_record(role, kind):
        _fail(f"the {role} role may not add a {kind} record (clearance is for customs)")
    b = _batch(code)
    if not (isinstance(data_hash, bytes) and len(data_hash) == 32):
        _fail("data_hash must be the 32-byte hash of the report kept off chain")
    _log(code, b, "record", {"record": kind, "data_hash": data_hash, "role": role})
    storage[["b", code]] = b
    emit("RecordAdded", code=code, kind=kind, data_hash=data_hash, by=ctx.sender, role=role)


def split(code, new_codes, quantities):
    """The holder splits a batch into new batches; their quantities add up to the parent's."""
    _caller_role()
    b = _batch(code)
    _movable(b, code)
    if not isinstance(new_codes, list) or not isinstance(quantities, list):
        _fail("new_codes and quantities must be lists")
    if len(new_codes) < 2 or len(new_codes) > SPLIT_MAX:
        _fail(f"a split makes 2 to {SPLIT_MAX} new batches")
    if len(quantities) != len(new_codes):
        _fail("give one quantity per new code")
    if b["depth"] >= SPLIT_DEPTH_MAX:
        _fail(f"batches may be split at most {SPLIT_DEPTH_MAX} levels deep")
    total = 0
    seen = {}
    for i in range(len(new_codes)):
        c = new_codes[i]
        q = quantities[i]
        _check_code(c, f"new_codes[{i}]")
        _check_quantity(q, f"quantities[{i}]")
        if c in seen:
            _fail(f"code {c} appears twice in new_codes")
        seen[c] = True
        if ["b", c] in storage:
            _fail(f"batch code {c} is already in use; every batch needs a new code")
        total += q
    if total != b["quantity"]:
        _fail(f"the new quantities add up to {total} but the batch holds {b['quantity']}; they must be equal")
    root_key = ["b", b["root"]]
    root = b if b["root"] == code else storage[root_key]
    if root["family"] + len(new_codes) > FAMILY_MAX:
        _fail(f"a batch and everything split from it may count at most {FAMILY_MAX} batches")
    root["family"] += len(new_codes)
    b["status"] = "split"
    b["children"] = new_codes
    _log(code, b, "split", {"into": new_codes, "quantities": quantities})
    for i in range(len(new_codes)):
        c = new_codes[i]
        child = {"product": b["product"], "origin": b["origin"], "quantity": quantities[i],
                 "producer": b["producer"], "holder": ctx.sender, "pending": None,
                 "status": "active", "recalled": False, "parent": code, "parent_n": b["n"],
                 "children": [], "root": b["root"], "depth": b["depth"] + 1, "family": 0,
                 "n": 0}
        _log(c, child, "split_from", {"parent": code, "quantity": quantities[i]})
        storage[["b", c]] = child
    if b["root"] != code:
        storage[root_key] = root
    storage[["b", code]] = b
    emit("Split", code=code, new_codes=new_codes, quantities=quantities, holder=ctx.sender)


def recall(code, reason):
    """The batch's producer or the regulator recalls it and every batch split from it."""
    b = _batch(code)
    if ctx.sender != b["producer"] and ctx.sender != storage["regulator"]:
        _fail("only the batch's producer or the regulator may recall it")
    _check_text(reason, "reason", REASON_CHARS_MAX)
    if b["recalled"]:
        _fail(f"batch {code} is already recalled")
    todo = [code]
    recalled = []
    i = 0
    while i < len(todo) and i < FAMILY_MAX:
        c = todo[i]
        i += 1
        x = b if c == code else storage[["b", c]]
        todo.extend(x["children"])
        if x["recalled"]:
            continue
        x["recalled"] = True
        _log(c, x, "recalled", {"reason": reason, "origin": code})
        storage[["b", c]] = x
        recalled.append(c)
        emit("Recalled", code=c, reason=reason, by=ctx.sender, origin=code)
    return recalled


# ---- views ------------------------------------------------------------------------------

def view_holder(code):
    return _batch(code)["holder"]


def view_status(code):
    """One of: recalled, split, in_transit (handed over, not yet received), active."""
    b = _batch(code)
    if b["recalled"]:
        return "recalled"
    if b["status"] == "split":
        return "split"
    if b["pending"] is not None:
        return "in_transit"
    return "active"


def view_batch(code):
    b = _batch(code)
    b["code"] = code
    b["state"] = view_status(code)
    return b


def view_history(code):
    """Every step in order: the ancestors' history up to each split, then the batch's own."""
    b = _batch(code)
    chain = [[code, b["n"]]]
    x = b
    while x["parent"] is not None:
        chain.append([x["parent"], x["parent_n"]])
        x = storage[["b", x["parent"]]]
    out = []
    for c, n in reversed(chain):
        for i in range(n):
            out.append(storage[["h", c, i]])
    return out


def view_participant(address):
    return storage.get(["p", address])
