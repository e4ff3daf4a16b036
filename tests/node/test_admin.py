"""The admin socket: a node writes backups and block archives while it runs; bad requests
(malformed, oversized, wrong types, silent, a second job at once) get an error answer and
the node goes on; a job ends, its partial file removed, when the node stops or the client
leaves. The server on a real ledger, and once inside a real Node."""

from __future__ import annotations

import os
import stat
import struct
import threading
from pathlib import Path

import pytest
import trio

import chainnode.node.admin as admin
import chainnode.store.backup as backup
from chainnode.node.admin import ADMIN_SOCKET_NAME, AdminError, AdminServer, AdminUnavailable, Request, call
from chainnode.node.node import Node
from chainnode.protocol.codec import pack, unpack
from chainnode.store.backup import check_archive, read_backup_header, restore
from tests.chain_fixtures import grow, open_chain
from tests.node.test_node_channel import make_node_folder

DEADLINE_S = 10


@pytest.fixture
def chain(tmp_path):
    chain = open_chain(tmp_path / "data")
    grow(chain, 4)
    yield chain
    chain.ledger.close()


async def ask(path: Path, request: Request, **kwargs) -> dict:
    return await trio.to_thread.run_sync(lambda: call(path, request, **kwargs))


async def raw_exchange(path: Path, data: bytes) -> list:
    """Send `data` as it is; the node's answer frame, decoded."""
    async with await trio.open_unix_socket(str(path)) as stream:
        await stream.send_all(data)
        answer = b""
        while chunk := await stream.receive_some(65536):
            answer += chunk
    size = struct.unpack(">I", answer[:4])[0]
    return unpack(answer[4:4 + size], max_bytes=size)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def wait_for(condition, what: str) -> None:
    try:
        with trio.fail_after(DEADLINE_S):
            while not condition():
                await trio.sleep(0.01)  # polling a condition, with a deadline
    except trio.TooSlowError:
        raise AssertionError(f"no {what} within {DEADLINE_S} s") from None


async def test_a_running_server_writes_a_backup_and_an_archive(tmp_path, chain):
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        seen = []
        done = await ask(server.path, Request("snapshot", tmp_path / "node.backup"), on_progress=seen.append)
        assert done["height"] == 4 and done["keys"] > 0
        assert read_backup_header(tmp_path / "node.backup").height == 4
        archive = await ask(server.path, Request("export-blocks", tmp_path / "blocks.archive", 2, None))
        assert (archive["from"], archive["to"]) == (2, 4) and check_archive(tmp_path / "blocks.archive").to_height == 4
        nursery.cancel_scope.cancel()
    assert not server.path.exists()  # removed at a clean stop
    assert restore(tmp_path / "node.backup", tmp_path / "restored")["height"] == 4


@pytest.mark.parametrize("data, says", [
    (frame(b"\xc1"), "malformed admin request"),
    (struct.pack(">I", 1 << 30), "requests are 1..4096 bytes"),
    (struct.pack(">I", 0), "requests are 1..4096 bytes"),
    (frame(pack([1, "snapshot", 5])), "out path: expected text"),
    (frame(pack([1, "snapshot"])), "expected 3 fields"),
    (frame(pack([2, "snapshot", "/tmp/x"])), "unknown version 2"),
    (frame(pack([1, "format-disk", "/tmp/x"])), "unknown admin command 'format-disk'"),
    (frame(pack([1, "snapshot", "relative/file"])), "must be an absolute path"),
    (frame(pack([1, "snapshot", "/tmp/a\x00b"])), "must be an absolute path"),
    (frame(pack([1, "export-blocks", "/tmp/x", 0, None])), "from height: 0 is outside"),
    (frame(pack([1, "export-blocks", "/tmp/x", 1, "9"])), "to height: expected an integer"),
    (frame(pack({"snapshot": "/tmp/x"})), "expected a list"),
    (frame(b"\x93\x01"), "malformed admin request"),  # a list cut short
])
async def test_a_bad_request_gets_an_error_and_the_server_goes_on(tmp_path, chain, data, says):
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        kind, message = (await raw_exchange(server.path, data))[1:]
        assert kind == "error" and says in message, message
        assert server.refused == 1
        assert (await ask(server.path, Request("snapshot", tmp_path / "after.backup")))["height"] == 4
        nursery.cancel_scope.cancel()


async def test_requests_the_node_must_refuse_say_why(tmp_path, chain, monkeypatch):
    monkeypatch.setattr(admin, "REQUEST_TIMEOUT_S", 0.2)
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    (tmp_path / "taken").write_bytes(b"")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for request, says in [
            (Request("snapshot", tmp_path / "taken"), "exists; choose another --out"),
            (Request("snapshot", tmp_path / "no-such-folder" / "x"), "is not a directory; create it"),
            (Request("snapshot", tmp_path / "data" / "chain.db" / "x"), "inside the node's chain database"),
            (Request("export-blocks", tmp_path / "x", 3, 9), "the head is block 4"),
        ]:
            with pytest.raises(AdminError, match=says):
                await ask(server.path, request)
        async with await trio.open_unix_socket(str(server.path)) as silent:  # says nothing: cut after the timeout
            await silent.send_all(b"\x00\x00")
            answer = await silent.receive_some(4096)
        assert b"no whole request within 0.2 s" in answer
        assert server.refused == 5 and server.job is None
        nursery.cancel_scope.cancel()


class Held:
    """Holds the server's job in its first tick until released (and counts its ticks)."""

    def __init__(self, monkeypatch) -> None:
        self.in_job = threading.Event()
        self.release = threading.Event()
        monkeypatch.setattr(backup, "TICK_RECORDS", 1)
        ticker = AdminServer._ticker

        def held_ticker(stream):
            tick = ticker(stream)

            def held(records: int, written: int) -> None:
                self.in_job.set()
                while not self.release.wait(0.01):
                    trio.from_thread.check_cancelled()  # the node stopping still ends it
                tick(records, written)

            return held

        monkeypatch.setattr(AdminServer, "_ticker", staticmethod(held_ticker))


async def test_one_job_at_a_time(tmp_path, chain, monkeypatch):
    held = Held(monkeypatch)
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        first: dict = {}

        async def first_job():
            first.update(await ask(server.path, Request("snapshot", tmp_path / "first.backup")))

        nursery.start_soon(first_job)
        await wait_for(held.in_job.is_set, "first job")
        with pytest.raises(AdminError, match=f"the node is writing a backup to {tmp_path / 'first.backup'}; one at a time"):
            await ask(server.path, Request("export-blocks", tmp_path / "second.archive", 1, None))
        held.release.set()
        await wait_for(lambda: first, "answer to the first job")
        assert first["height"] == 4 and server.jobs_done == 1
        nursery.cancel_scope.cancel()


async def test_a_job_ends_and_its_partial_file_goes_when_the_node_stops(tmp_path, chain, monkeypatch):
    held = Held(monkeypatch)
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    out = tmp_path / "stopped.backup"
    told: list[str] = []

    async def client():
        try:
            await ask(server.path, Request("snapshot", out))
        except AdminError as exc:  # the blocking client learns it when the node closes the connection
            told.append(str(exc))

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        nursery.start_soon(client)
        await wait_for(held.in_job.is_set, "job")
        assert out.with_name(out.name + ".tmp").exists()
        nursery.cancel_scope.cancel()  # the node stops
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists() and not server.path.exists()
    assert told and "closed the admin connection before it answered" in told[0]


async def test_a_job_ends_when_its_client_leaves(tmp_path, chain, monkeypatch):
    held = Held(monkeypatch)
    monkeypatch.setattr(admin, "PROGRESS_INTERVAL_S", 0)  # a progress frame every record: the first after the client left fails
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    out = tmp_path / "left.backup"
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with await trio.open_unix_socket(str(server.path)) as stream:
            await stream.send_all(frame(Request("snapshot", out).encode()))
            await wait_for(held.in_job.is_set, "job")
        held.release.set()
        await wait_for(lambda: server.job is None, "end of the job")
        assert server.jobs_done == 0 and not out.exists() and not out.with_name(out.name + ".tmp").exists()
        assert (await ask(server.path, Request("snapshot", tmp_path / "next.backup")))["height"] == 4
        nursery.cancel_scope.cancel()


async def test_no_server_is_told_apart_from_a_refusal(tmp_path, chain):
    with pytest.raises(AdminUnavailable):
        await ask(tmp_path / ADMIN_SOCKET_NAME, Request("snapshot", tmp_path / "x"))
    # A socket left by a killed node: nobody listens, and a starting server replaces it.
    server = AdminServer(chain.ledger, chain_id="c", data_dir=tmp_path / "data")
    stale = trio.socket.socket(trio.socket.AF_UNIX)
    await stale.bind(str(server.path))
    stale.close()
    with pytest.raises(AdminUnavailable):
        await ask(server.path, Request("snapshot", tmp_path / "x"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert (await ask(server.path, Request("snapshot", tmp_path / "x")))["height"] == 4
        nursery.cancel_scope.cancel()


async def test_a_node_serves_its_admin_socket_while_it_runs(tmp_path):
    config, genesis, key, _ = make_node_folder(tmp_path, with_ca=False)
    socket_path = config.data_dir / ADMIN_SOCKET_NAME
    node = Node(config, genesis, key)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
            assert (await ask(socket_path, Request("snapshot", tmp_path / "running.backup")))["height"] == 0
            nursery.cancel_scope.cancel()
    finally:
        node.chain.ledger.close()
    assert not socket_path.exists()
    assert read_backup_header(tmp_path / "running.backup").genesis_hash == genesis.hash()


async def test_a_deep_data_directory_still_gets_its_socket(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # beyond the 107 bytes of a socket address
    chain = open_chain(deep / "data")
    try:
        server = AdminServer(chain.ledger, chain_id="c", data_dir=deep / "data")
        assert len(str(server.path)) > 107
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
            assert (await ask(server.path, Request("snapshot", tmp_path / "deep.backup")))["height"] == 0
            nursery.cancel_scope.cancel()
    finally:
        chain.ledger.close()
