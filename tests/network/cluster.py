"""Builders for in-process test clusters of real Network services on 127.0.0.1."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import trio

from chainnode.crypto import get_suite
from chainnode.network import Network, NetworkLimits, PeerInfo, host_seed_from_consensus_key, peer_id_from_seed
from tests.helpers import free_port

GENESIS = hashlib.sha256(b"test genesis").digest()
SUITE_NAME = "sm"



@dataclass
class Member:
    index: int
    priv: bytes
    pub: bytes
    seed: bytes
    port: int
    role: str = "sealer"
    info: PeerInfo = field(init=False)

    def __post_init__(self) -> None:
        self.info = PeerInfo(self.index, peer_id_from_seed(self.seed), [f"/ip4/127.0.0.1/tcp/{self.port}"], self.pub, self.role)

    @property
    def peer_id(self) -> str:
        return self.info.peer_id


def make_members(n: int, *, start_index: int = 0) -> list[Member]:
    suite = get_suite(SUITE_NAME)
    out = []
    for i in range(n):
        priv, pub = suite.generate_keypair()
        out.append(Member(start_index + i, priv, pub, host_seed_from_consensus_key(suite, priv), free_port()))
    return out


def make_network(me: Member, admitted: list[Member] | list[PeerInfo], *, genesis: bytes = GENESIS,
                 limits: NetworkLimits | None = None, priv: bytes | None = None, pub: bytes | None = None,
                 credentials: bytes = b"", check_credentials=None, p2p_noise25519: bool = False, network_class=Network) -> Network:
    infos = [m.info if isinstance(m, Member) else m for m in admitted]
    return network_class(
        host_key_seed=me.seed,
        listen_addr=f"/ip4/127.0.0.1/tcp/{me.port}",
        peers=infos,
        consensus_priv=priv or me.priv,
        consensus_pub=pub or me.pub,
        suite=get_suite(SUITE_NAME),
        genesis_hash=genesis,
        limits=limits,
        credentials=credentials,
        check_credentials=check_credentials,
        p2p_noise25519=p2p_noise25519,
    )


class Noise25519OnlyNetwork(Network):
    """A node of a version before the SM channel: it offers libp2p's X25519 Noise only."""

    def _security_options(self) -> dict:
        from libp2p.crypto.x25519 import create_new_key_pair as x25519
        from libp2p.custom_types import TProtocol
        from libp2p.security.noise.transport import PROTOCOL_ID as NOISE, Transport as Noise

        return {TProtocol(NOISE): Noise(self._keypair, noise_privkey=x25519().private_key)}


def bare_host(me: Member, admitted: list[Member], *, genesis: bytes = GENESIS, noise25519_only: bool = False):
    """A plain libp2p host with `me`'s host key and no chainnode protocol on top: it speaks
    the SM channel as `me` (or, with `noise25519_only`, libp2p's X25519 Noise alone, as a
    node of a version before the SM channel)."""
    from libp2p import new_host
    from libp2p.crypto.x25519 import create_new_key_pair as x25519
    from libp2p.custom_types import TProtocol
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE, Transport as Noise

    from chainnode.network.identity import keypair_from_seed
    from chainnode.network.metrics import Counters
    from chainnode.network.peers import PeerTable
    from chainnode.network.policing import PenaltyBox
    from chainnode.network.secure import PROTOCOL_ID, SmNoiseTransport

    kp = keypair_from_seed(me.seed)
    if noise25519_only:
        return new_host(key_pair=kp, sec_opt={TProtocol(NOISE): Noise(kp, noise_privkey=x25519().private_key)})
    table = PeerTable([m.info for m in admitted])
    channel = SmNoiseTransport(
        host_keypair=kp, suite_name=SUITE_NAME, consensus_priv=me.priv, consensus_pub=me.pub, genesis_hash=genesis, credentials=b"",
        peers=lambda: table, verify_credentials=lambda info, chain: None, penalties=PenaltyBox(2000, 60000, 600000),
        counters=Counters(), label="bare", handshake_timeout_ms=5000,
    )
    return new_host(key_pair=kp, sec_opt={PROTOCOL_ID: channel})


class Running:
    """A Network started in a nursery, stoppable on its own (like a process exiting)."""

    def __init__(self, net: Network, scope: trio.CancelScope) -> None:
        self.net = net
        self.scope = scope
        self.stopped = trio.Event()

    def stop(self) -> None:
        self.scope.cancel()


async def start(nursery: trio.Nursery, net: Network) -> Running:
    async def runner(task_status=trio.TASK_STATUS_IGNORED):
        with trio.CancelScope() as scope:
            running = Running(net, scope)
            try:
                await net.run(task_status=_Forward(task_status, running))
            finally:
                running.stopped.set()

    return await nursery.start(runner)


class _Forward:
    def __init__(self, task_status, value) -> None:
        self._ts = task_status
        self._value = value

    def started(self, _=None) -> None:
        self._ts.started(self._value)


def refusals(*nets: Network) -> int:
    """How many connections `nets` have refused (not admitted, banned) or cut at the
    handshake for a certificate: a counter to wait on when a test shows that a peer stays
    out, instead of sleeping and looking."""
    return sum(n for net in nets for key, n in net.counters.items() if key.startswith(("refused:", "disconnects:certificate")))


async def until_refused_again(*nets: Network, timeout_s: float = 15.0) -> None:
    """Wait until `nets` refuse one more connection than they had when called. Of two
    peers only one dials (chainnode/network/supervisor.py), so a test that does not fix
    who dials whom passes every node the refused peer might reach."""
    before = refusals(*nets)
    with trio.fail_after(timeout_s):
        while refusals(*nets) <= before:
            await trio.sleep(0.02)


def sorted_by_peer_id(members: list[Member]) -> list[Member]:
    """Members in dial order: the lower peer id (as raw bytes) dials the higher one."""
    from libp2p.peer.id import ID

    return sorted(members, key=lambda m: ID.from_base58(m.peer_id).to_bytes())


def all_tasks() -> int:
    """How many trio tasks exist right now (walks the whole task tree)."""
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


async def drain(channel, n: int, timeout_s: float) -> list:
    """Receive n items, taking whatever is already queued without a checkpoint per item."""
    out = []
    with trio.fail_after(timeout_s):
        while len(out) < n:
            try:
                out.append(channel.receive_nowait())
            except trio.WouldBlock:
                out.append(await channel.receive())
    return out


def task_names() -> list[str]:
    out = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        out.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return sorted(out)
