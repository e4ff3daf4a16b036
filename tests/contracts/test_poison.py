"""No poison transaction: whatever a contract hands to the chain, its receipt encodes.

A lone surrogate in a `require` message or an event name once made a receipt that
`chainnode.protocol.codec.pack` could not encode; the exception escaped block execution and killed
the nodes. Now the engine checks every value against what the codec can encode and fails
the transaction with a failed receipt that says why, and the executor turns anything that
still escapes into an `InternalError` receipt.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chainnode.crypto import get_suite
from chainnode.execution.executor import Executor, receipt_of
from chainnode.protocol.types import Receipt, Transaction
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import parse_genesis
from contracts.engine import Engine
from tests.contracts.support import MemoryStore, ctx

SUITE = get_suite("sm")
TX_HASH = b"\x7e" * 32
ENGINE = Engine(SUITE)  # built once: it raises the recursion limit, which hypothesis watches

HANDLER = '''
def init(v, how):
    _hand(v, how)

def hand(v, how):
    return _hand(v, how)

def _hand(v, how):
    if how == "return":
        return v
    if how == "emit_field":
        emit("E", v=v)
    elif how == "emit_name":
        emit(v, a=1)
    elif how == "require":
        require(False, v)
    elif how == "raise":
        raise ContractError(v)
    elif how == "storage_key":
        storage[v] = 1
    elif how == "storage_value":
        storage["k"] = v
    elif how == "str_key":
        storage[str(v)] = str(v)
    return None
'''
HOW = ["return", "emit_field", "emit_name", "require", "raise", "storage_key", "storage_value", "str_key"]

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.one_of(
    SURROGATES,
    st.text(min_size=0, max_size=80),
    st.lists(st.one_of(SURROGATES, st.sampled_from(["a", "\x00", "é", "中", "\U0001f600"])), max_size=70).map("".join),
)


class Bytes(bytes):
    pass


class Str(str):
    pass


class Int(int):
    pass


scalars = st.one_of(
    st.none(), st.booleans(), hostile_text,
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([2**64, -(2**63) - 1, 2**1000]),
    st.binary(max_size=40), st.builds(Bytes, st.binary(max_size=8)), st.builds(Str, hostile_text),
    st.builds(Int, st.integers(-5, 5)),
)


def _deep(n: int) -> list:
    v: list = []
    for _ in range(n):
        v = [v]
    return v


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(hostile_text, st.integers(), st.binary(max_size=4), st.booleans()), inner, max_size=4),
    ),
    max_leaves=20,
) | st.integers(10, 40).map(_deep) | st.just([0] * 5000)


def assert_receipt_encodes(result) -> Receipt:
    receipt = receipt_of(TX_HASH, result)
    data = receipt.encode()  # raised on the lone surrogate before the fix
    assert Receipt.decode(data) == receipt  # and every peer can read it back
    return receipt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v=values, how=st.sampled_from(HOW))
def test_any_value_a_contract_hands_over_gives_a_receipt_that_encodes(v, how) -> None:
    engine = ENGINE
    base = MemoryStore()
    deployed = engine.deploy(base, ctx(), HANDLER, [None, "return"], 2_000_000, b"\x01")
    assert deployed.ok, deployed
    address = deployed.contract_address
    for result in (
        engine.execute(base, ctx(), address, "hand", [v, how], 2_000_000),
        engine.deploy(base, ctx(), HANDLER, [v, how], 2_000_000, os.urandom(8)),
    ):
        receipt = assert_receipt_encodes(result)
        if not receipt.ok:
            assert receipt.error_type


def test_a_lone_surrogate_fails_the_transaction_and_says_why() -> None:
    engine = Engine(SUITE)
    base = MemoryStore()
    address = engine.deploy(base, ctx(), HANDLER, [None, "return"], 2_000_000, b"\x01").contract_address
    for how in HOW:
        result = engine.execute(base, ctx(), address, "hand", [chr(0xD800), how], 2_000_000)
        assert not result.ok, how
        assert "UTF-8" in result.error_message, (how, result)
        assert_receipt_encodes(result)
    # Surrogates built inside the contract, and constant event names, the same.
    source = '''
def name():
    emit("\\ud800", a=1)

def built():
    require(False, chr(0xDFFF) + "x")
'''
    deployed = engine.deploy(base, ctx(), source, [], 2_000_000, b"\x02")
    assert deployed.ok, deployed
    for method in ("name", "built"):
        result = engine.execute(base, ctx(), deployed.contract_address, method, [], 2_000_000)
        assert not result.ok and "UTF-8" in result.error_message, result
        assert_receipt_encodes(result)


def test_the_contracts_own_message_reaches_the_receipt() -> None:
    engine = Engine(SUITE)
    base = MemoryStore()
    address = engine.deploy(base, ctx(), HANDLER, [None, "return"], 2_000_000, b"\x01").contract_address
    for how in ("require", "raise"):
        receipt = assert_receipt_encodes(engine.execute(base, ctx(), address, "hand", ["insufficient balance", how], 2_000_000))
        assert (receipt.error_type, receipt.error_message) == ("ContractError", "insufficient balance")
    # The engine's own limits say which limit.
    receipt = assert_receipt_encodes(engine.execute(base, ctx(), address, "hand", ["x" * 70, "emit_name"], 2_000_000))
    assert receipt.error_type == "ValueError"


# ---- the executor: a block with such transactions, on every node alike ------------------

SEALERS = [SUITE.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(4)]
USER = SUITE.keypair_from_private(b"\x09" * 32)


def genesis(config: dict | None = None):
    return parse_genesis({
        "format": "chainnode-genesis/1", "chain_id": "chain0", "group_id": "group0", "suite": "sm", "timestamp_ms": 0,
        "nodes": [{"name": f"n{i}", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": f"p{i}"}
                  for i, (_, pub) in enumerate(SEALERS)],
        "committee": [{"address": SUITE.address(SEALERS[0][1]).hex()}],
        "config": config or {},
    })


def tx(to: bytes, method: str, args: list, *, nonce: bytes, gas_limit: int = 1_000_000) -> Transaction:
    priv, pub = USER
    return Transaction("chain0", "group0", nonce, 50, to, method, args, gas_limit, pub).signed(SUITE, priv)


@pytest.fixture
def ledgers(tmp_path):
    """Two nodes' ledgers from the same genesis."""
    out = []
    for name in ("a", "b"):
        ledger = Ledger.open(tmp_path / name, SUITE)
        block, writes = genesis().block()
        ledger.commit_block(block, [], None, writes)
        out.append(ledger)
    yield out
    for ledger in out:
        ledger.close()


POISON = '''
def init():
    storage["n"] = 1

def poison_message():
    require(False, chr(0xD800))

def poison_event():
    emit(chr(0xD800), a=1)

def ok():
    storage["n"] = storage["n"] + 1
    return storage["n"]
'''


def test_a_block_with_poison_transactions_executes_alike_and_its_receipts_encode(ledgers) -> None:
    from contracts.engine import contract_address

    deploy = tx(b"", "", [POISON, []], nonce=b"d")
    address = contract_address(SUITE, SUITE.address(USER[1]), deploy.nonce)
    # The deploy itself, with a poison init, too.
    poison_deploy = tx(b"", "", ['def init():\n    emit("\\udc00", a=1)\n', []], nonce=b"p")
    txs = [deploy, poison_deploy, tx(address, "poison_message", [], nonce=b"1"),
           tx(address, "poison_event", [], nonce=b"2"), tx(address, "ok", [], nonce=b"3")]
    results = []
    for ledger in ledgers:
        executor = Executor(SUITE, Engine(SUITE), "chain0", "group0")
        hashes = executor.check_transactions(ledger.state, 1, txs, is_committed=lambda h: False)
        results.append(executor.execute(ledger.state, ledger.head_header.state_root, 1, 1000, txs, hashes))
    a, b = results
    assert (a.receipt_root, a.state_root) == (b.receipt_root, b.state_root)
    for r in a.receipts:
        assert Receipt.decode(r.encode()) == r
    ok, bad_deploy, bad_message, bad_event, counted = a.receipts
    assert ok.ok and counted.ok and counted.output == 2
    for r in (bad_deploy, bad_message, bad_event):
        assert not r.ok and "UTF-8" in r.error_message, r


def test_an_exception_escaping_the_engine_is_a_failed_receipt_not_a_crash(ledgers, monkeypatch, caplog) -> None:
    ledger = ledgers[0]
    executor = Executor(SUITE, Engine(SUITE), "chain0", "group0")
    txs = [tx(b"\x05" * 20, "m", [], nonce=b"x"), tx(b"\x06" * 20, "m", [], nonce=b"y")]
    hashes = executor.check_transactions(ledger.state, 1, txs, is_committed=lambda h: False)

    real = executor.engine.execute

    def broken(base, c, to, method, args, gas_limit):
        if to == b"\x05" * 20:
            base.set(b"c" + to + b"/x", b"written before the bug")
            raise RuntimeError("a bug in the engine")
        return real(base, c, to, method, args, gas_limit)

    monkeypatch.setattr(executor.engine, "execute", broken)
    with caplog.at_level("ERROR", logger="chainnode.execution.executor"):
        done = executor.execute(ledger.state, ledger.head_header.state_root, 1, 1000, txs, hashes)
    bug, other = done.receipts
    assert (bug.status, bug.error_type, bug.gas_used) == (1, "InternalError", 1_000_000)
    assert other.error_type == "NoContract"
    assert not any(k.startswith(b"c" + b"\x05" * 20) for k in done.writes), "the failed transaction's writes are undone"
    assert "a bug in the engine" in caplog.text
    # MemoryError is not turned into a receipt: the node cannot go on safely.
    monkeypatch.setattr(executor.engine, "execute", lambda *a: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        executor.execute(ledger.state, ledger.head_header.state_root, 1, 1000, txs, hashes)


# ---- the per-block gas limit ---------------------------------------------------------------


# Gas a payment uses, with room (docs/contracts.md: ~4,500; tests/contracts/test_engine.py).
PAYMENT_GAS_MAX = 10_000


def test_a_full_block_of_payments_fits_the_default_block_gas_limit() -> None:
    # Blocks are bounded by the gas their transactions use (tests/execution/test_chain.py):
    # tx_count_limit payments fit, and any one transaction does.
    from chainnode.system.state import CONFIG_SPEC

    assert CONFIG_SPEC["tx_count_limit"][2] * PAYMENT_GAS_MAX <= CONFIG_SPEC["block_gas_limit"][2]
    assert CONFIG_SPEC["tx_gas_limit"][2] <= CONFIG_SPEC["block_gas_limit"][2]
