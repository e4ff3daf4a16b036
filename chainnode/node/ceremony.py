"""The consortium ceremony: how institutions on their own machines make one genesis without
any private key leaving the member it belongs to.

1. Each member, on its own machine: `chainnode keygen`, then `chainnode init --request`
   writes a node request (`NodeRequest`, a JSON file): the node's name, organisation, role,
   consensus public key, peer id, dial addresses and a PKCS#10 CSR, all signed by the
   node's consensus key. Only public parts are in it.
2. The member's agency signs the CSR (`chainnode ca sign-csr --request REQ`), giving the
   node's certificate chain.
3. The organiser runs `chainnode genesis new --member REQ ... --cert CHAIN ... --ca ROOT ...
   --governor ADDR ...`: `build_genesis` checks every request's signatures, that names,
   keys, peer ids and addresses are unique and well formed, that each certificate chain
   verifies under the given roots and certifies exactly one member's key and peer id, and
   writes the genesis.
4. Each member receives the genesis and its certificate, runs `chainnode init --genesis`
   and `chainnode start`.

A node joining a running chain makes the same request; the committee proposes it with
`chainnode gov propose add-sealer --request REQ`. chainnode/node/lab.py runs every step in
one process for a test lab.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from chainnode.crypto import ADDRESS_BYTES, SUITE_NAMES, get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.protocol.codec import pack
from chainnode.protocol.dialaddr import ADDRS_MAX, DialAddrError, parse_dial_addr
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.security.certs import NODE_ROLES, CertChain, Certificate, CertificateError, check_peer_id, verify_chain, verify_root
from chainnode.security.keyfile import KeyPair
from chainnode.security.x509 import build_csr, load_csr
from chainnode.store.files import read_bounded, write_atomic
from chainnode.system.genesis import FORMAT as GENESIS_FORMAT, GenesisError, new_chain_config, parse_genesis

REQUEST_FORMAT = "chainnode-node-request/1"
REQUEST_DOMAIN = b"chainnode/node-request/v1"
REQUEST_BYTES_MAX = 32 * 1024
NAME_CHARS_MAX = 64


class CeremonyError(ValueError):
    """A request, certificate or genesis input is unusable; the message names it and the fix."""


@dataclass(frozen=True)
class NodeRequest:
    name: str
    organisation: str
    role: str
    suite: str
    consensus_pub: bytes
    peer_id: str
    addrs: tuple[str, ...]
    csr_der: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        return REQUEST_DOMAIN + pack([self.name, self.organisation, self.role, self.suite, self.consensus_pub, self.peer_id,
                                      list(self.addrs), self.csr_der])

    @property
    def address(self) -> bytes:
        return get_suite(self.suite).address(self.consensus_pub)

    def to_json(self) -> dict:
        return {
            "format": REQUEST_FORMAT, "name": self.name, "organisation": self.organisation, "role": self.role, "suite": self.suite,
            "consensus_pub": self.consensus_pub.hex(), "peer_id": self.peer_id, "addrs": list(self.addrs),
            "csr": base64.b64encode(self.csr_der).decode(), "signature": self.signature.hex(),
        }

    def genesis_entry(self) -> dict:
        return {"name": self.name, "role": self.role, "consensus_pub": self.consensus_pub.hex(), "peer_id": self.peer_id,
                "addrs": list(self.addrs)}


def check_name(name: Any, what: str = "the node name") -> str:
    if type(name) is not str or not 1 <= len(name) <= NAME_CHARS_MAX or not name.isprintable() or name != name.strip():
        raise CeremonyError(f"{what} must be 1 to {NAME_CHARS_MAX} printable characters, got {name!r}")
    return name


def dial_addrs(values: Sequence[str]) -> tuple[str, ...]:
    """Canonical dial addresses (CeremonyError for a bad one), at most ADDRS_MAX."""
    if len(values) > ADDRS_MAX:
        raise CeremonyError(f"a node has at most {ADDRS_MAX} dial addresses, got {len(values)}")
    try:
        addrs = tuple(parse_dial_addr(v) for v in values)
    except DialAddrError as exc:
        raise CeremonyError(str(exc)) from None
    if len(set(addrs)) != len(addrs):
        raise CeremonyError("a dial address is listed twice")
    return addrs


def make_request(key: KeyPair, *, name: str, organisation: str, role: str, addrs: Sequence[str]) -> NodeRequest:
    """The signed request of the node whose consensus key is `key`."""
    check_name(name)
    check_name(organisation, "the organisation")
    if role not in NODE_ROLES:
        raise CeremonyError(f"the role must be one of {', '.join(NODE_ROLES)}, got {role!r}")
    suite = get_suite(key.suite)
    peer_id = peer_id_from_seed(host_seed_from_consensus_key(suite, key.private_key))
    csr = build_csr(suite=key.suite, private_key=key.private_key, public_key=key.public_key, common_name=name, organisation=organisation)
    request = NodeRequest(name, organisation, role, key.suite, key.public_key, peer_id, dial_addrs(addrs), csr, b"")
    signature = suite.sign(key.private_key, request.signed_bytes())
    return replace(request, signature=signature)


def parse_request(doc: Any, source: str) -> NodeRequest:
    """A request whose signature and CSR verify and whose fields are well formed."""
    if not isinstance(doc, dict) or doc.get("format") != REQUEST_FORMAT:
        raise CeremonyError(f"{source}: not a node request (expected \"format\": \"{REQUEST_FORMAT}\"); make one with `chainnode init --request`")
    known = {"format", "name", "organisation", "role", "suite", "consensus_pub", "peer_id", "addrs", "csr", "signature"}
    if set(doc) != known:
        raise CeremonyError(f"{source}: a node request has exactly the fields {', '.join(sorted(known))}")
    try:
        suite_name = doc["suite"]
        if suite_name not in SUITE_NAMES:
            raise CeremonyError(f"suite must be one of {', '.join(SUITE_NAMES)}")
        suite = get_suite(suite_name)
        role = doc["role"]
        if role not in NODE_ROLES:
            raise CeremonyError(f"role must be one of {', '.join(NODE_ROLES)}")
        pub = parse_hex(doc["consensus_pub"], what="consensus_pub", length=suite.public_key_bytes)
        peer_id = doc["peer_id"]
        check_peer_id(peer_id)
        if not isinstance(doc["addrs"], list):
            raise CeremonyError("addrs must be a list of dial addresses")
        if type(doc["csr"]) is not str or type(doc["signature"]) is not str:
            raise CeremonyError("csr and signature must be strings")
        request = NodeRequest(
            check_name(doc["name"]), check_name(doc["organisation"], "the organisation"), role, suite_name, pub, peer_id,
            dial_addrs(doc["addrs"]), base64.b64decode(doc["csr"], validate=True), parse_hex(doc["signature"], what="signature"),
        )
        csr = load_csr(request.csr_der)
    except (CeremonyError, CertificateError, HexError, ValueError) as exc:  # binascii.Error is a ValueError
        raise CeremonyError(f"{source}: {exc}") from None
    if not suite.verify(pub, request.signed_bytes(), request.signature):
        raise CeremonyError(f"{source}: the request's signature does not verify with its consensus key: it was altered; ask the member for a new one")
    if csr.suite != suite_name or csr.public_key != pub or csr.common_name != request.name or csr.organisation != request.organisation:
        raise CeremonyError(f"{source}: the CSR inside does not match the request (key, name or organisation)")
    return request


def read_request(path: Path) -> NodeRequest:
    data = read_bounded(Path(path), noun="node request", max_bytes=REQUEST_BYTES_MAX, error=CeremonyError)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CeremonyError(f"{path}: not JSON ({exc}); a node request is the file `chainnode init --request` wrote") from None
    return parse_request(doc, str(path))


def write_request(path: Path, request: NodeRequest) -> None:
    write_atomic(Path(path), (json.dumps(request.to_json(), indent=2) + "\n").encode())


def build_genesis(
    requests: Sequence[NodeRequest],
    *,
    chains: Sequence[CertChain] = (),
    roots: Sequence[Certificate] = (),
    governors: Sequence[tuple[bytes, int]],
    chain_id: str = "chain0",
    group_id: str = "group0",
    timestamp_ms: int | None = None,
    config: dict[str, int] | None = None,
) -> dict:
    """The genesis document of these members, checked as a node checks it. With `roots`,
    every member needs its certificate chain among `chains` (matched by public key)."""
    if not requests:
        raise CeremonyError("a genesis needs at least one member's request (--member)")
    suites = {r.suite for r in requests}
    if len(suites) > 1:
        raise CeremonyError(f"the requests are of different suites ({', '.join(sorted(suites))}): a chain has one")
    suite = suites.pop()
    for what, values in (("name", [r.name for r in requests]), ("consensus key", [r.consensus_pub for r in requests]),
                         ("peer id", [r.peer_id for r in requests])):
        dup = next((v for v in values if values.count(v) > 1), None)
        if dup is not None:
            raise CeremonyError(f"two requests have the same {what} ({dup.hex()[:16] + '…' if isinstance(dup, bytes) else dup}); each node needs its own")
    addrs = [a for r in requests for a in r.addrs]
    dup_addr = next((a for a in addrs if addrs.count(a) > 1), None)
    if dup_addr:
        raise CeremonyError(f"two nodes advertise the same dial address {dup_addr}")
    if not any(r.role == "sealer" for r in requests):
        raise CeremonyError("no request is a sealer: a chain needs at least one")
    if not governors:
        raise CeremonyError("a genesis needs at least one governor (--governor ADDRESS): the committee votes on every change")
    for address, weight in governors:
        if len(address) != ADDRESS_BYTES or not 1 <= weight <= 1_000_000:
            raise CeremonyError("a governor is a 20-byte address with a weight of 1 to 1000000")
    if chains and not roots:
        raise CeremonyError("certificates were given but no root CA (--ca) to check them against")
    now_ms = int(time.time() * 1000)
    for root in roots:
        if root.suite != suite:
            raise CeremonyError(f"the root CA {root.subject!r} is a {root.suite} certificate; the members' keys are {suite}")
        try:
            verify_root(root, now_ms)
        except CertificateError as exc:
            raise CeremonyError(f"root CA {root.subject!r}: {exc}") from None
    by_key = {r.consensus_pub: r for r in requests}
    certified = set()
    for chain in chains:
        try:
            leaf = verify_chain(chain, roots, now_ms)
        except CertificateError as exc:
            raise CeremonyError(f"certificate {chain.leaf.subject!r}: {exc}") from None
        member = by_key.get(leaf.public_key)
        if member is None:
            raise CeremonyError(f"the certificate {leaf.subject!r} certifies a key that no request has; pass the request of that node (--member)")
        if leaf.kind != "node" or leaf.peer_id != member.peer_id:
            raise CeremonyError(f"the certificate {leaf.subject!r} is not a node certificate for {member.name}'s peer id {member.peer_id}")
        if leaf.role != member.role:
            raise CeremonyError(f"{member.name} asks to be a {member.role}, its certificate says {leaf.role}")
        certified.add(member.consensus_pub)
    if roots:
        missing = [r.name for r in requests if r.consensus_pub not in certified]
        if missing:
            raise CeremonyError(f"with root CAs every node needs its certificate chain (--cert); missing for: {', '.join(missing)}")
    doc = {
        "format": GENESIS_FORMAT,
        "chain_id": chain_id,
        "group_id": group_id,
        "suite": suite,
        "timestamp_ms": timestamp_ms if timestamp_ms is not None else now_ms,
        "nodes": [r.genesis_entry() for r in requests],
        "committee": [{"address": a.hex(), "weight": w} for a, w in governors],
        "governance": {"participation_rate_pct": 51, "win_rate_pct": 51},
        "config": new_chain_config(config),
    }
    if roots:
        doc["ca_certs"] = [r.der.hex() for r in roots]
    try:
        parse_genesis(doc, "the new genesis")
    except GenesisError as exc:
        raise CeremonyError(str(exc)) from None
    return doc
