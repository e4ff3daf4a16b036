"""Outside input never crashes the engine: mangled sources either compile or are rejected
with ContractRejected, and whatever compiles, called with any plain arguments, returns a
CallResult. (Property tests; the red team covers the deliberate attacks.)"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from contracts.engine import CallResult, ContractRejected, Engine
from tests.contracts.support import MemoryStore, ctx
from tests.contracts.test_engine import ESCROW, TOKEN

ENGINE = Engine()
SNIPPETS = ["(", ")", ":", "_", "__", ".", "[", "]", "{", "}", "'", "lambda ", "yield ", "import ",
            "\n    ", "\n", " / ", " ** ", " * 10**9", "f'{x!r}'", "1.5", "del ", "global x", "*", "=", ","]

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mangled_source(draw: st.DrawFn) -> str:
    source = draw(st.sampled_from([TOKEN, ESCROW]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(source)))
        if draw(st.booleans()):
            source = source[:at] + draw(st.sampled_from(SNIPPETS)) + source[at:]
        else:
            source = source[:at] + source[at + draw(st.integers(1, 5)):]
    return source


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled_source(), st.lists(plain_values, max_size=3), st.sampled_from(["transfer", "deposit", "view_balance", "spin", "_mint"]))
def test_mangled_contracts_compile_or_are_rejected_and_never_crash(source: str, args: list, method: str) -> None:
    try:
        compiled = ENGINE.compile(source)
    except ContractRejected as exc:
        assert exc.reason
        return
    result = ENGINE.call(compiled, method, args, state=MemoryStore(), ctx=ctx(), gas_limit=200_000)
    assert isinstance(result, CallResult)
    assert result.ok or result.error_type
    assert 0 <= result.gas_used <= 200_000
