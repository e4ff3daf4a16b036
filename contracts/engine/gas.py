"""The fixed gas schedule and the hard limits of the contract engine.

Every number here is part of consensus: two nodes that disagree on one of them compute
different receipts. Changing any value is a protocol change and must bump
`ENGINE_VERSION` (in `compiler.py`) so cached code and recorded gas stay consistent.

Gas is counted on the contract's AST (never on bytecode, which changes between CPython
releases) and by the runtime guards, per byte or item they produce. Memory is bounded
through gas: nothing grows without being paid for, per byte or per item.
"""

from __future__ import annotations

# ---- gas: straight-line code ------------------------------------------------------------
# One unit per AST node of the statements a block runs (names, constants, operators,
# calls...). A block is charged once on entry for all its straight-line statements: an early
# `return` or `break` does not refund, which keeps the charge to one inline subtraction.
NODE_GAS = 1
# Entering any contract function (on top of its body's nodes): pays for the frame.
FUNCTION_ENTRY_GAS = 20
# Each loop iteration and each comprehension element (on top of the body's nodes).
ITERATION_GAS = 3
# Extra, each comprehension element (a gas check per element runs as a call), and each
# element a dict comprehension inserts.
COMPREHENSION_ELEMENT_GAS = 6
DICT_COMPREHENSION_ELEMENT_GAS = 8
# Extra, per AST node of these kinds (measured by tests/bench/gas.py: each runs Python-level
# guard code worth far more than one node): a call (a builtin, a guard, a contract
# function), an attribute read (a method goes through the allow-list and a wrapper), an
# f-string field (formatted by a guard), a `raise`, an unpacking target, an item read
# (a guard), a binary operator or a comparison (a guard, or an inlined type test).
CALL_NODE_GAS = 20
ATTRIBUTE_NODE_GAS = 30
FORMAT_NODE_GAS = 75
RAISE_NODE_GAS = 40
UNPACK_NODE_GAS = 40
SUBSCRIPT_NODE_GAS = 6
OPERATOR_NODE_GAS = 8
# Entering an `except` block: the exception was raised, unwound and matched.
EXCEPT_HANDLER_GAS = 50

# ---- gas: values produced by guarded operations ----------------------------------------
# Per byte (str counts 1 per character) of str/bytes produced by + * % formatting, methods.
BYTE_GAS = 1
# Per element of a list/tuple/dict produced or copied, and per element scanned by `in`,
# comparisons of containers, sorting, and other operations that walk a container in C.
ITEM_GAS = 4
# Per node of a value walked to bound and pay for work CPython does in C on it (comparing,
# hashing a tuple key, printing) or to copy it across a boundary (storage, events, calls).
# Charged even when the walk fails, so catching the error and retrying is never cheap.
WALK_NODE_GAS = 10
# Per node of a value copied across a boundary (storage, events, arguments, return values):
# a recursive Python walk that builds the copy. An event's fields are walked a second time
# by the receipt check, and pay this twice.
COPY_NODE_GAS = 24
# Each tuple used as a dict key (walked, then hashed in C, uncached) and each (key, value)
# pair given to dict() (unpacked by the guard of an unpacking target, its key checked).
TUPLE_KEY_GAS = 70
PAIR_GAS = 80
# Big-integer arithmetic: per 64-bit limb of the result (a power: times 4), or per pair
# of operand limbs for a product or a division, or (times 40) per modulus limb squared and
# exponent limb for a modular power.
LIMB_GAS = 2
# Scanning text in C (find, count, `in`, isdigit, split...): one gas per this many characters.
SCAN_CHARS_PER_GAS = 2
# Decimal operations whose cost does not show in the AST (34-digit context): a square root,
# a power (a fractional exponent runs exp/ln), int <-> Decimal conversions per digit.
DECIMAL_SQRT_GAS = 300
DECIMAL_POW_GAS = 300
DECIMAL_FRACTIONAL_POW_GAS = 8_000
DECIMAL_DIGIT_GAS = 1
DECIMAL_OP_GAS = 40  # each Decimal + - * // % and each Decimal added by sum()
DECIMAL_DIV_GAS = 100  # each decimal_div() (a correctly rounded 34-digit division)
# Each min()/max(): its items and key are checked in Python before C picks one.
MIN_MAX_GAS = 120

# ---- gas: chain services ----------------------------------------------------------------
CALL_BASE_GAS = 500            # every top-level call (transaction execution)
CROSS_CALL_GAS = 2_000         # each `call(address, method, ...)` from a contract
CODE_BYTE_GAS = 1              # per byte of source loaded for a cross-contract call
DEPLOY_BASE_GAS = 20_000       # deploying a contract
DEPLOY_BYTE_GAS = 20           # per byte of deployed source (stored forever)
STORAGE_READ_GAS = 200         # each storage read or membership test
STORAGE_READ_BYTE_GAS = 5      # per byte of key + value read (decoding builds an object per few bytes)
STORAGE_WRITE_GAS = 1_000      # each storage write
STORAGE_WRITE_BYTE_GAS = 10    # per byte of key + value written
STORAGE_DELETE_GAS = 500       # each storage delete
EVENT_GAS = 300                # each emitted event
EVENT_BYTE_GAS = 5             # per byte of encoded event fields
HASH_GAS = 60                  # `hash(data)`
HASH_WORD_GAS = 12             # per 32-byte word hashed
VERIFY_GAS = 40_000            # `verify_signature(pub, msg, sig)` (an SM2 verify: ~200 µs)
VALUE_BYTE_GAS = 1             # per byte of arguments/return values copied across calls

# ---- limits (checked before the operation, so the host never allocates past them) ------
SOURCE_BYTES_MAX = 128 * 1024          # one contract's source
CALL_DEPTH_MAX = 8                     # contracts on the call stack (top-level call = 1)
FUNCTION_DEPTH_MAX = 200               # contract Python frames alive at once, per transaction
INT_BITS_MAX = 1024                    # magnitude of any integer an operation produces
# Decimal digits of int<->str conversions; below CPython's smallest settable
# int_max_str_digits (640) so the host's setting can never be what decides.
INT_STR_DIGITS_MAX = 400
STR_CHARS_MAX = 1_000_000                # characters of one str, bytes of one bytes
ITEMS_MAX = 100_000                    # elements of one list/tuple/dict built by a guard
FORMAT_WIDTH_CHARS_MAX = 1_000               # width or precision in a format spec
WALK_NODES_MAX = 100_000               # nodes visited when comparing/serialising a value
WALK_DEPTH_MAX = 64                    # nesting of a value compared, hashed or printed
STORAGE_KEY_BYTES_MAX = 512            # encoded storage key
STORAGE_VALUE_BYTES_MAX = 64 * 1024    # encoded storage value
EVENTS_MAX = 1_024                     # events per transaction
EVENT_NAME_CHARS_MAX = 64             # event names and field names (chainnode.protocol.types.NAME_CHARS_MAX)
EVENT_BYTES_MAX = 8 * 1024             # encoded fields of one event
# Encoded fields of all events of one transaction. With VALUE_BYTES_MAX for the return
# value this keeps every receipt under chainnode.protocol.types.RECEIPT_BYTES_MAX (1 MiB).
TX_EVENT_BYTES_MAX = 512 * 1024
ERROR_MESSAGE_CHARS_MAX = 512          # a ContractError message (longer ones are cut)
VALUE_BYTES_MAX = 256 * 1024           # encoded arguments or return value of one call
DECIMAL_STR_CHARS_MAX = 100            # text given to Decimal()

# The schedule as a table, for the docs and for tests that pin it.
SCHEDULE = {
    name: value
    for name, value in sorted(globals().items())
    if name.isupper() and (name.endswith("_GAS") or name.endswith("_MAX"))
}
