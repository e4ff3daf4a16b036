"""Errors of the contract engine.

Two families, on purpose:

- `Exception` subclasses a contract may raise and catch (`ContractError`, `CallError`,
  and the usual `ValueError`, `KeyError`...). A receipt records the type name, and the
  message only for `ContractError` (and `CallError`, a subclass): CPython's own error texts
  change between versions, ours do not.
- `EngineAbort` subclasses derive from `BaseException`, so `except Exception:` in a
  contract cannot catch them (bare `except:` and `except BaseException` do not compile).
  Running out of gas or crossing a hard limit ends the whole transaction, every time.
"""

from __future__ import annotations

import threading

from contracts.engine.gas import ERROR_MESSAGE_CHARS_MAX


def text_ok(s: str) -> bool:
    """Whether the codec can encode `s`: UTF-8 has no form for a lone surrogate
    (chr(0xD800)..chr(0xDFFF)), which Python strings may hold. Pure: the same on every node."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ContractRejected(ValueError):
    """Source that is not a valid contract; names the line, column and reason."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(f"line {line}, column {column}: {reason}")


class ContractError(Exception):
    """Raised by a contract (directly or through `require`) to fail with a message."""

    def __init__(self, message: object = "contract error") -> None:
        text = message if type(message) is str else _safe_text(message)
        # Cut, not reject: a failing contract must still fail with its own error.
        text = text[:ERROR_MESSAGE_CHARS_MAX]
        # The message goes into the receipt: text the codec cannot encode would make a
        # receipt no node can write (and so a block no node can commit). Replaced, the
        # same way on every node, by a message that says why.
        self.message = text if text_ok(text) else "the error message is not valid UTF-8 text (a lone surrogate)"
        super().__init__(self.message)


class CallError(ContractError):
    """A cross-contract call failed; its writes and events were dropped."""


class EngineAbort(BaseException):
    """Ends the transaction; not catchable by contract code.

    Each abort also records itself per thread (`abort_state.pending`): `except` cannot
    catch it, but a `finally` block could still end in `return`; the engine checks this
    record when a call returns normally and fails the call anyway."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        abort_state.pending = self


abort_state = threading.local()
abort_state.pending = None


class OutOfGas(EngineAbort):
    """The gas limit was reached; the receipt charges the whole limit."""


class LimitExceeded(EngineAbort):
    """An operation would cross a hard limit (sizes, widths, counts)."""


class CallDepthExceeded(EngineAbort):
    """Too many nested contract calls or contract function frames."""


class ReentrancyError(EngineAbort):
    """A contract already on the call stack was called again."""


class DeterminismError(EngineAbort):
    """An operation whose result could differ between nodes (floats, locale, repr)."""


def _safe_text(value: object) -> str:
    # Only plain values give text that is the same on every node; anything else (a
    # function, the storage object) would print a memory address.
    if value is None or type(value) in (bool, int):
        return str(value)
    return f"<{type(value).__name__}>"
