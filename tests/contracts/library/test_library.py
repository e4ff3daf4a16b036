"""The library package: every contract is found, compiles on both suites and deploys."""

from __future__ import annotations

import pytest

from chainnode.crypto import get_suite
from contracts.engine import Engine
from contracts.engine.gas import SOURCE_BYTES_MAX
from contracts.library import NAMES, source
from tests.contracts.library.harness import GAS, Chain, addr


def test_names_and_sources() -> None:
    assert NAMES == ("payment", "supply_chain", "cross_border")
    for name in NAMES:
        text = source(name)
        assert text.startswith('"""') and len(text.encode()) < SOURCE_BYTES_MAX // 2
        assert "float" not in text.replace("no floats", "")
    with pytest.raises(ValueError, match="unknown contract"):
        source("../payment")


@pytest.mark.parametrize("suite", ["sm", "ed25519"])
@pytest.mark.parametrize("name", NAMES)
def test_compiles_and_deploys_with_roles_or_defaults(name: str, suite: str) -> None:
    Engine(get_suite(suite)).compile(source(name))
    chain = Chain(suite)
    explicit = chain.deploy(name, addr(0x0A), addr(0x0B), sender=addr(0x01))
    default = chain.deploy(name, sender=addr(0x01))
    assert explicit.deployed.gas_used < GAS // 20
    assert explicit.address != default.address
