"""Versions: of the software, of its wire protocol, and of the chain's rules.

- The software version is the package's (`chainnode --version`), MAJOR.MINOR.PATCH. Nodes
  tell it each other in the connection handshake and show it in their status.
- The chain's `compatibility_version` (system config, chainnode/system/state.py) is the
  software version whose rules the chain runs, FISCO BCOS's model: it is raised by a
  committee vote once every sealer runs that version, and every change of
  consensus-visible behaviour is gated on it, so a newer node runs an older chain's rules
  until the vote. A node whose software is older than the chain's compatibility version
  refuses to start (and stops, if a committed block raises it past its own), naming the
  version to install.

In system config a version is one integer, MAJOR * 1_000_000 + MINOR * 1_000 + PATCH
(0.2.0 is 2000), so it is ordered and fits the config's integer values; people read and
write "0.2.0".

CHAINNODE_TEST_SOFTWARE_VERSION, when set, replaces the software version this process
reports: the rolling-upgrade test's "build N+1" (tests/integration/test_rolling_upgrade.py).
It is a test hook, not a setting: a production node never has it.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

TEST_VERSION_ENV = "CHAINNODE_TEST_SOFTWARE_VERSION"
_VERSION = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
VERSION_NUMBER_MAX = 999_999_999


class VersionError(ValueError):
    pass


def parse_version(text: str) -> int:
    """"0.2.0" -> 2000; VersionError unless MAJOR.MINOR.PATCH of 0..999 each."""
    m = _VERSION.match(text) if type(text) is str else None
    if m is None:
        raise VersionError(f"{text!r} is not a version MAJOR.MINOR.PATCH like 0.2.0")
    major, minor, patch = (int(g) for g in m.groups())
    return major * 1_000_000 + minor * 1_000 + patch


def format_version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1_000 % 1_000}.{number % 1_000}"


def _package_version() -> str:
    try:
        text = metadata.version("chainnode")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"
    m = re.match(r"^\d+\.\d+\.\d+", text)
    return m.group(0) if m else "0.0.0"


# The first release whose rules put the state tree's root in block headers (header version 2).
STATE_TREE_VERSION = 3_000  # 0.3.0


def header_version(compatibility_version: int) -> int:
    """The block header version a chain running `compatibility_version`'s rules writes."""
    return 2 if compatibility_version >= STATE_TREE_VERSION else 1


SOFTWARE_VERSION = os.environ.get(TEST_VERSION_ENV) or _package_version()
parse_version(SOFTWARE_VERSION)  # a malformed test version fails at import, loudly
SOFTWARE_VERSION_NUMBER = parse_version(SOFTWARE_VERSION)
