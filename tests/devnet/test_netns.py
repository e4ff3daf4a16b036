"""Several hosts on one machine (devnet/netns.py): the lab itself (addresses, names, cables,
cleanup, stale labs of killed runs), then the real thing: four sealers, each in a network
namespace of its own, deployed with `chainnode genesis lab` and started with `chainnode
start`, commit and agree; a host whose cable is pulled commits nothing while the other
three go on, and catches up and agrees once it is plugged back in.

Skipped, with the reason, where namespaces cannot be made (not root, no `ip`, a kernel
without them). Nothing here waits on a sleep: every wait polls a counter with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import trio

from devnet import netns
from devnet.bench import Transfers, send_transactions
from devnet.netns import Consortium, Lab, LabError

OK, WHY = Lab.available()
# CI sets CHAINNODE_REQUIRE_NETNS=1 (.ci/run): there a machine without namespaces fails these
# tests, with the reason, instead of skipping them unseen.
pytestmark = pytest.mark.skipif(not OK and os.environ.get("CHAINNODE_REQUIRE_NETNS") != "1", reason=f"no network namespaces here: {WHY}")

# A TCP server answering each connection with its host's view of who it is, and a client.
ECHO_SERVER = """
import socket, sys
s = socket.create_server(("0.0.0.0", int(sys.argv[1])))
print("listening", flush=True)
while True:
    c, peer = s.accept()
    with c:
        c.sendall(("from " + peer[0] + ": " + c.recv(100).decode()).encode())
"""
CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.sendall(b"hello")
        print(c.recv(200).decode())
except OSError as exc:
    print("unreachable:", exc)
    sys.exit(3)
"""
PORT = 7100


def _things_named(tag: str) -> list[str]:
    """Everything on this machine that carries the lab's tag: namespaces, links, files."""
    found = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split() if n.startswith(tag)]
    found += [n for n in netns.root_links() if n.startswith(tag)]
    found += [str(p) for p in netns.NETNS_ETC.glob(f"{tag}-*")] if netns.NETNS_ETC.exists() else []
    found += [str(p) for p in netns.STATE_DIR.glob(f"{tag}.json")]
    return found


def _connect(lab: Lab, i: int, address: str, timeout_s: float = 2.0) -> subprocess.CompletedProcess:
    return lab.run(i, [sys.executable, "-c", CLIENT, address, str(PORT), str(timeout_s)], timeout_s=timeout_s + 30)


def _serve(lab: Lab, i: int) -> subprocess.Popen:
    server = lab.popen(i, [sys.executable, "-c", ECHO_SERVER, str(PORT)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "listening"
    return server


# ---- the lab -----------------------------------------------------------------------------


def test_hosts_have_their_own_addresses_names_and_reach_each_other_and_the_test_process():
    with Lab.create(hosts=3, names=["bank-a", "bank-b", "customs"]) as lab:
        assert len({h.address for h in lab.hosts}) == 3 and all(h.address.startswith(netns.SUBNET_BASE + ".") for h in lab.hosts)
        names = [h.netns for h in lab.hosts] + [h.veth for h in lab.hosts] + [lab.bridge]
        assert all(len(n) <= netns.IFNAME_MAX and n.startswith(f"{netns.PREFIX}{os.getpid()}") for n in names), names
        _serve(lab, 2)
        p = _connect(lab, 0, "customs")  # by name, through /etc/netns/<ns>/hosts
        assert p.returncode == 0 and p.stdout.strip() == f"from {lab.hosts[0].address}: hello", p
        # The test process reaches the hosts over the bridge, from the bridge's address.
        import socket

        with socket.create_connection((lab.hosts[2].address, PORT), timeout=5) as c:
            c.sendall(b"hi")
            assert c.recv(200).decode() == f"from {lab.gateway}: hi"
        # Each host has a loopback of its own: 127.0.0.1 in host 0 is not host 2's.
        assert _connect(lab, 0, "127.0.0.1").returncode == 3
        assert _connect(lab, 2, "127.0.0.1").returncode == 0


def test_a_host_whose_link_is_down_reaches_nobody_and_is_back_when_it_is_up():
    with Lab.create(hosts=3) as lab:
        _serve(lab, 1)
        assert _connect(lab, 0, "host1").returncode == 0
        lab.link_down(1)
        assert not lab.link_is_up(1)
        p = _connect(lab, 0, "host1", timeout_s=1.0)
        assert p.returncode == 3 and "timed out" in p.stdout, p  # lost, not refused: a pulled cable
        assert _connect(lab, 2, "host1", timeout_s=1.0).returncode == 3
        assert _connect(lab, 1, lab.hosts[1].address).returncode == 0  # it still reaches itself
        lab.link_up(1)
        assert _connect(lab, 0, "host1", timeout_s=10.0).returncode == 0


def test_everything_is_removed_on_close_on_an_exception_and_on_ctrl_c():
    for exc in (None, RuntimeError("boom"), KeyboardInterrupt()):
        try:
            with Lab.create(hosts=2) as lab:
                tag = lab.tag
                sleeper = lab.popen(0, ["sleep", "600"])
                assert _things_named(tag)
                if exc is not None:
                    raise exc
        except (RuntimeError, KeyboardInterrupt) as caught:
            assert caught is exc
        assert sleeper.poll() is not None, "a process of the lab outlived it"
        assert _things_named(tag) == [], f"left behind after {exc!r}: {_things_named(tag)}"
    with pytest.raises(LabError, match="closed"):
        lab.popen(0, ["true"])


def test_a_lab_of_a_killed_run_is_swept_by_the_next_one_and_its_processes_died_with_it():
    script = (
        "from devnet.netns import Lab\n"
        "lab = Lab.create(hosts=2)\n"
        "p = lab.popen(1, ['sleep', '600'])\n"
        "print(lab.tag, p.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        tag, sleeper = run.stdout.readline().split()
    finally:
        run.kill()  # SIGKILL: no cleanup of its own runs
        run.wait(timeout=30)
    deadline = time.monotonic() + 30
    while netns.process_start_time(int(sleeper)) is not None:  # the parent-death signal
        assert time.monotonic() < deadline, f"pid {sleeper}, started in the killed run's lab, is still alive"
        time.sleep(0.05)
    assert _things_named(tag), "the killed run should have left its lab behind"
    with Lab.create(hosts=1) as lab:
        assert _things_named(tag) == []
        assert lab.tag != tag


def test_available_says_why_not_when_it_cannot(monkeypatch):
    monkeypatch.setattr(netns, "_available", None)
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    ok, why = netns.available()
    assert not ok and "root" in why
    monkeypatch.setattr(netns, "_available", None)
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "_ip_path", lambda: None)
    ok, why = netns.available()
    assert not ok and "iproute2" in why
    monkeypatch.setattr(netns, "_available", None)  # the next call probes the machine again


# ---- four sealers on four hosts ----------------------------------------------------------

DEADLINE_S = 90  # per wait: generous for a loaded 2-core machine
LOAD_BATCH = 4  # transfers a batch, every LOAD_INTERVAL_S, round-robin over the hosts that stay up
LOAD_INTERVAL_S = 0.25


async def _wait(what: str, predicate, *, timeout_s: float = DEADLINE_S, poll_s: float = 0.2, explain=lambda: ""):
    """Poll `predicate` (run on a thread: it may block on RPC or a subprocess) until it
    returns a true value; that value. Fails with `what`, the last value and `explain()`
    (the nodes' logs) at the deadline."""
    deadline = trio.current_time() + timeout_s
    last = None
    while trio.current_time() < deadline:
        try:
            last = await trio.to_thread.run_sync(predicate)
        except Exception as exc:  # a node busy or restarting: try again until the deadline
            last = exc
        else:
            if last:
                return last
        await trio.sleep(poll_s)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r}){explain()}")


def _logs(chain: Consortium) -> str:
    """The nodes' last log lines (for a failure's message)."""
    return "".join(f"\n--- {n.name} (host {n.host}) log, last lines:\n{chain.log(n.index)[-3000:]}" for n in chain.nodes)


def _agree(chain: Consortium, nodes: list[int], top: int) -> None:
    for h in range(1, top + 1):
        hashes = {i: chain.block_hash(i, h) for i in nodes}
        assert len(set(hashes.values())) == 1 and None not in hashes.values(), f"height {h}: {hashes}"


async def test_four_sealers_on_four_hosts_agree_and_a_cut_off_host_commits_nothing_then_catches_up(tmp_path):
    with Lab.create(hosts=4) as lab:
        chain = Consortium.create(lab, tmp_path / "lab", scrypt_n=1024, config={"block_interval_min_ms": 200})
        assert [n.rpc_url for n in chain.nodes] == [f"http://{h.address}:8545" for h in lab.hosts]
        assert all(n.p2p.startswith(f"/ip4/{lab.hosts[n.host].address}/") for n in chain.nodes)
        chain.start_all()
        everyone, others, cut = [0, 1, 2, 3], [0, 1, 2], 3
        sent = 0
        async with chain.client([chain.nodes[i].rpc_url for i in others], timeout_s=30) as client:
            load = await Transfers.setup(client, 1, supply=1_000_000)
            window = load.info["blockLimitWindow"]

            async def trickle(task_status=trio.TASK_STATUS_IGNORED):
                nonlocal sent
                task_status.started()
                while True:
                    height = await client.block_number()
                    errors = await send_transactions(client, load.sign(LOAD_BATCH, block_limit=height + window - 10))
                    assert not any(errors), errors
                    sent += LOAD_BATCH
                    await trio.sleep(LOAD_INTERVAL_S)

            async with trio.open_nursery() as nursery:
                await nursery.start(trickle)
                # (a) all four commit, and hold the same blocks.
                start = max(chain.height(i) for i in everyone)
                await _wait("all four nodes commit 3 blocks", lambda: all(chain.height(i) >= start + 3 for i in everyone),
                            explain=lambda: _logs(chain))
                top = min(chain.height(i) for i in everyone)
                await trio.to_thread.run_sync(_agree, chain, everyone, top)

                # (b) host 3's cable is pulled: the three others go on; host 3 stays where it was.
                lab.link_down(chain.nodes[cut].host)
                held = (await trio.to_thread.run_sync(chain.status_inside, cut))["blockNumber"]
                await _wait("the three connected sealers commit 5 blocks past the cut-off one",
                            lambda: all(chain.height(i) >= held + 5 for i in others), explain=lambda: _logs(chain))
                inside = await trio.to_thread.run_sync(chain.status_inside, cut)
                assert inside["blockNumber"] == held, f"host 3 committed while cut off: {held} -> {inside['blockNumber']}"
                ahead = max(chain.height(i) for i in others)

                # ...then plugged back in: it catches up and agrees.
                lab.link_up(chain.nodes[cut].host)
                await _wait(f"host 3 catches up to height {ahead}", lambda: chain.height(cut) >= ahead, explain=lambda: _logs(chain))
                nursery.cancel_scope.cancel()
        top = min(chain.height(i) for i in everyone)
        assert top >= ahead
        _agree(chain, everyone, top)
        assert sent > 0
        for i in everyone:
            assert chain.exit_code(i) is None, f"{chain.nodes[i].name} exited: {chain.log(i)[-2000:]}"
            assert "Traceback" not in chain.log(i), chain.log(i)[-4000:]


async def test_a_consortium_laid_out_by_host_names_resolves_them_through_the_lab_hosts_files(tmp_path):
    with Lab.create(hosts=4) as lab:
        chain = Consortium.create(lab, tmp_path / "lab", by_name=True, scrypt_n=1024, config={"block_interval_min_ms": 200})
        assert all(n.p2p.split("/")[1] in ("dns", "dns4") and n.p2p.split("/")[2] == lab.hosts[n.host].name for n in chain.nodes), \
            [n.p2p for n in chain.nodes]
        chain.start_all()
        everyone = [0, 1, 2, 3]
        async with chain.client(timeout_s=30) as client:  # over the channel ports, as a dApp
            load = await Transfers.setup(client, 1, supply=1_000)
            height = await client.block_number()
            errors = await send_transactions(client, load.sign(10, block_limit=height + load.info["blockLimitWindow"] - 10))
            assert not any(errors), errors
        await _wait("all four nodes reach the height of the last transfers", lambda: all(chain.height(i) >= height + 1 for i in everyone),
                    explain=lambda: _logs(chain))
        _agree(chain, everyone, min(chain.height(i) for i in everyone))
