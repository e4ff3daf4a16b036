"""The node's admin socket, through which a running node writes backups and block
archives (`chainnode db snapshot`, `db export-blocks`), and the import of a block archive
into a stopped node (`chainnode db import-blocks`).

A running node holds its LevelDB and the data directory's lock, so no other process can
read its data: the node writes the file itself. `<data_dir>/admin.sock` is a Unix domain
socket of mode 0600, so only the node's OS user (and root) can use it; it is made at start
(one left by a killed node is replaced: the directory's lock says no other node serves
it) and removed at a clean stop. The work runs on a worker thread over a LevelDB snapshot,
so the node keeps committing and serving meanwhile; one job at a time.

    request  = frame([1, "snapshot", out_path])
             | frame([1, "export-blocks", out_path, from_height, to_height or nil])
    response = frame([1, "progress", {"records": n, "bytes": n}])*   about once a second
               then frame([1, "done", {what was written}]) or frame([1, "error", message])
    frame    = u32 big-endian length ‖ msgpack

`out_path` is absolute and must not exist. A malformed, oversized, slow or unknown request
gets an error answer and the connection closes; the node goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import trio

from chainnode.crypto import get_suite
from chainnode.execution.chain import Chain
from chainnode.execution.executor import Executor, InvalidBlock
from chainnode.node.config import NodeConfig
from chainnode.node.init import InitError, open_chain_ledger
from chainnode.protocol.codec import DecodeError, expect_int, expect_list, expect_str, expect_version, pack, unpack
from chainnode.protocol.types import InvalidCertificate
from chainnode.store.backup import BackupError, BlockArchive, Tick, check_archive, export_blocks, write_backup
from chainnode.store.ledger import Ledger
from chainnode.store.leveldb import DB_DIRNAME, StorageError
from chainnode.system.genesis import Genesis
from contracts.engine import Engine

log = logging.getLogger("chainnode.admin")

ADMIN_SOCKET_NAME = "admin.sock"
REQUEST_BYTES_MAX = 4096
RESPONSE_BYTES_MAX = 64 * 1024
REQUEST_TIMEOUT_S = 5.0  # connect -> the whole request (a silent client is cut)
SEND_TIMEOUT_S = 10.0  # one response frame; a client that does not read loses its job
CONNECTIONS_MAX = 8
PROGRESS_INTERVAL_S = 1.0
CLIENT_IDLE_TIMEOUT_S = 600.0  # the client's wait for the next frame (an fsync of a large file is slow)
PATH_CHARS_MAX = 4096
SUN_PATH_BYTES_MAX = 107  # sockaddr_un's 108 bytes, with the terminating NUL
COMMANDS = ("snapshot", "export-blocks")


class AdminError(RuntimeError):
    """The node refused or failed the request; the message says why and what to do."""


class AdminUnavailable(AdminError):
    """No node answers on the socket (none runs, or one was killed and left its socket)."""


# ---- the request ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    command: str
    out: Path
    from_height: int = 1
    to_height: int | None = None  # None: the head

    def encode(self) -> bytes:
        if self.command == "snapshot":
            return pack([1, "snapshot", str(self.out)])
        return pack([1, "export-blocks", str(self.out), self.from_height, self.to_height])

    @classmethod
    def decode(cls, payload: bytes) -> "Request":
        """The request in `payload`, or AdminError naming what is wrong with it."""
        try:
            f = expect_list(unpack(payload, max_bytes=REQUEST_BYTES_MAX), "admin request")
            expect_version(f, "admin request", 1)
            command = expect_str(f[1] if len(f) > 1 else None, "admin command", max_length=32)
            if command not in COMMANDS:
                raise DecodeError(f"unknown admin command {command!r}; known: {', '.join(COMMANDS)}")
            expect_list(f, f"admin request {command}", length=3 if command == "snapshot" else 5)
            out = _out_path(expect_str(f[2], "out path", max_length=PATH_CHARS_MAX))
            if command == "snapshot":
                return cls(command, out)
            to_height = None if f[4] is None else expect_int(f[4], "to height", lo=1)
            return cls(command, out, expect_int(f[3], "from height", lo=1), to_height)
        except DecodeError as exc:
            raise AdminError(f"malformed admin request: {exc}") from None


def _out_path(text: str) -> Path:
    if "\x00" in text or not os.path.isabs(text):
        raise DecodeError(f"out path {text[:64]!r} must be an absolute path (the client resolves it)")
    return Path(os.path.normpath(text))


# ---- frames -----------------------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def _receive_exact(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise AdminError("the request ended before its frame did")
        data += chunk
    return bytes(data)


async def _receive_frame(stream: trio.abc.ReceiveStream, bytes_max: int) -> bytes:
    size = struct.unpack(">I", await _receive_exact(stream, 4))[0]
    if not 0 < size <= bytes_max:
        raise AdminError(f"an admin request of {size} bytes; requests are 1..{bytes_max} bytes")
    return await _receive_exact(stream, size)


async def _send(stream: trio.abc.SendStream, message: list) -> None:
    with trio.fail_after(SEND_TIMEOUT_S):
        await stream.send_all(_frame(pack(message)))


@contextmanager
def _sun_path(path: Path) -> Iterator[str]:
    """An address for `path` that fits sockaddr_un: a longer path goes through its folder's
    descriptor under /proc/self/fd (Linux), so a deep data directory still gets its socket."""
    if len(os.fsencode(path)) <= SUN_PATH_BYTES_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# ---- the server -------------------------------------------------------------------------


class AdminServer:
    """Serves `<data_dir>/admin.sock` in the node's nursery (`run`)."""

    def __init__(self, ledger: Ledger, *, chain_id: str, data_dir: Path, name: str = "node") -> None:
        self.ledger = ledger
        self.chain_id = chain_id
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / ADMIN_SOCKET_NAME
        self.name = name
        self.job: str | None = None  # what is being written, if anything
        self.refused = 0  # requests answered with an error
        self.jobs_done = 0
        self._connections = 0

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            sock = await self._listen()
        except OSError as exc:
            # A backup convenience must not keep a sealer from running: say so, and go on.
            log.warning("%s: no admin socket at %s (%s); online backups (`chainnode db snapshot`) need it, offline ones work "
                        "with the node stopped", self.name, self.path, exc.strerror or exc)
            task_status.started()
            return
        try:
            task_status.started()
            await trio.serve_listeners(self._handle, [trio.SocketListener(sock)])
        finally:
            self.path.unlink(missing_ok=True)

    async def _listen(self) -> trio.socket.SocketType:
        self._remove_stale()
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _sun_path(self.path) as address:
                await sock.bind(address)
                os.chmod(address, 0o600)  # before listen(): nobody can connect while it is wider
            sock.listen(CONNECTIONS_MAX)
        except BaseException:
            sock.close()
            raise
        return sock

    def _remove_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(f"{self.path} exists and is not a socket: move it away")
        self.path.unlink()  # left by a node that was killed; we hold the data directory's lock

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            if self._connections >= CONNECTIONS_MAX:
                await self._refuse(stream, f"{CONNECTIONS_MAX} admin connections are open already; try again when they are done")
                return
            self._connections += 1
            try:
                await self._serve(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
                log.info("%s: an admin client went away before its answer", self.name)
            except Exception:
                # Outside input never stops the node (DESIGN rule 7); a failure here is a bug
                # of the backup code, which the operator sees in the log and the client as
                # a closed connection, while the node goes on committing.
                log.exception("%s: an admin request failed", self.name)
            finally:
                self._connections -= 1

    async def _refuse(self, stream: trio.SocketStream, message: str) -> None:
        self.refused += 1
        await _send(stream, [1, "error", message])

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                request = Request.decode(await _receive_frame(stream, REQUEST_BYTES_MAX))
            self._check_out(request.out)
        except trio.TooSlowError:
            await self._refuse(stream, f"no whole request within {REQUEST_TIMEOUT_S:g} s")
            return
        except AdminError as exc:
            await self._refuse(stream, str(exc))
            return
        if self.job is not None:
            await self._refuse(stream, f"the node is writing {self.job}; one at a time: try again when it is done")
            return
        self.job = f"{'a backup' if request.command == 'snapshot' else 'a block archive'} to {request.out}"
        log.info("%s: writing %s", self.name, self.job)
        try:
            result = await trio.to_thread.run_sync(self._job(request), self._ticker(stream))
        except (BackupError, StorageError, OSError) as exc:
            await self._refuse(stream, str(exc))
            return
        finally:
            self.job = None
        self.jobs_done += 1
        log.info("%s: wrote %s (%d bytes in %d ms)", self.name, result["file"], result["bytes"], result["ms"])
        await _send(stream, [1, "done", result])

    def _check_out(self, out: Path) -> None:
        if out.is_relative_to(self.data_dir / DB_DIRNAME):
            raise AdminError(f"{out} is inside the node's chain database; choose a path outside {self.data_dir / DB_DIRNAME}")

    def _job(self, request: Request) -> Callable[[Tick], dict]:
        """The work of `request`, for the worker thread. A snapshot is taken now, so a backup
        holds the chain as of the request."""
        if request.command == "export-blocks":
            return lambda tick: export_blocks(self.ledger, request.out, chain_id=self.chain_id, from_height=request.from_height,
                                              to_height=request.to_height, tick=tick)
        snapshot = self.ledger.snapshot()

        def backup(tick: Tick) -> dict:
            try:
                return write_backup(snapshot, request.out, chain_id=self.chain_id, suite=self.ledger.suite, tick=tick)
            finally:
                snapshot.close()

        return backup

    @staticmethod
    def _ticker(stream: trio.SocketStream) -> Tick:
        """The job's tick, on the worker thread: it stops the job when the node stops
        (trio's cancellation), and sends the client a progress frame about once a second
        (a client gone stops the job too)."""
        last_s = time.monotonic()

        def tick(records: int, written_bytes: int) -> None:
            nonlocal last_s
            trio.from_thread.check_cancelled()
            now_s = time.monotonic()
            if now_s - last_s >= PROGRESS_INTERVAL_S:
                last_s = now_s
                trio.from_thread.run(_send, stream, [1, "progress", {"records": records, "bytes": written_bytes}])

        return tick


# ---- the client -------------------------------------------------------------------------


def call(socket_path: Path, request: Request, *, on_progress: Callable[[dict], None] | None = None,
         idle_timeout_s: float = CLIENT_IDLE_TIMEOUT_S) -> dict:
    """Ask the node serving `socket_path` to do `request`; what it wrote, AdminError if it
    refused or failed, AdminUnavailable if no node answers there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(idle_timeout_s)
    with sock:
        try:
            with _sun_path(socket_path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise AdminUnavailable(f"no node answers on {socket_path}") from None
        except PermissionError:
            raise AdminError(f"cannot use {socket_path}: permission denied; run this as the user the node runs as (the socket is 0600)") from None
        try:
            sock.sendall(_frame(request.encode()))
            while True:
                kind, body = _read_response(sock)
                if kind == "done":
                    return body
                if kind == "error":
                    raise AdminError(body)
                if on_progress is not None:
                    on_progress(body)
        except socket.timeout:
            raise AdminError(f"the node said nothing for {idle_timeout_s:g} s; see its log") from None
        except OSError as exc:
            raise AdminError(f"the admin connection failed ({exc.strerror or exc}); did the node stop? See its log") from None


def _read_response(sock: socket.socket) -> tuple[str, Any]:
    size = struct.unpack(">I", _recv_exact(sock, 4))[0]
    if not 0 < size <= RESPONSE_BYTES_MAX:
        raise AdminError(f"the node sent an admin frame of {size} bytes; is this a chainnode admin socket?")
    try:
        f = expect_list(unpack(_recv_exact(sock, size), max_bytes=RESPONSE_BYTES_MAX), "admin response", length=3)
        expect_version(f, "admin response", 1)
        kind = expect_str(f[1], "admin response kind", max_length=16)
    except DecodeError as exc:
        raise AdminError(f"the node's answer is not valid ({exc}); is this a chainnode admin socket?") from None
    if kind not in ("progress", "done", "error"):
        raise AdminError(f"the node's answer is of an unknown kind {kind!r}")
    return kind, f[2]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AdminError("the node closed the admin connection before it answered (did it stop?); see its log")
        data += chunk
    return bytes(data)


# ---- importing a block archive into a stopped node ----------------------------------------


def import_blocks(config: NodeConfig, genesis: Genesis, path: Path, *, progress: Callable[[int], None] | None = None) -> dict:
    """Apply the blocks of archive `path` to the stopped node of `config`, each through the
    checks block sync makes (`Chain.apply_certified`: the certificate against the sealer set
    of its height, re-execution, every root compared). The whole file is checked first, so
    a damaged one applies nothing; blocks the node has already are skipped (and must be the
    same). `progress(height)` after each block. Returns what was done."""
    started_s = time.monotonic()
    header = check_archive(path)
    if header.genesis_hash != genesis.hash():
        raise BackupError(f"{path} holds blocks of another chain ({header.chain_id}, genesis {header.genesis_hash.hex()[:16]}…); this node's "
                          f"genesis is {genesis.hash().hex()[:16]}…: import it into a node of that chain")
    try:
        # The node's own history setting, or the import would prune state it keeps (as Node opens it).
        ledger = open_chain_ledger(config.data_dir, genesis, create=False, state_history_blocks=config.state_history_blocks,
                                   block_history_blocks=config.block_history_blocks)
    except InitError as exc:
        raise BackupError(str(exc)) from None
    try:
        suite = get_suite(genesis.suite)
        chain = Chain(ledger, Executor(suite, Engine(suite), genesis.chain_id, genesis.group_id))
        before = chain.height
        if header.from_height > before + 1:
            raise BackupError(f"{path} begins at block {header.from_height}, but this node's head is block {before}: import blocks "
                              f"{before + 1}..{header.from_height - 1} first (an archive of them), or let the node sync them from its peers")
        _apply(chain, path, progress)
        after = chain.height
    finally:
        ledger.close()
    return {"file": str(path), "from": header.from_height, "to": header.to_height, "applied": after - before, "height": after,
            "ms": round((time.monotonic() - started_s) * 1000)}


def _apply(chain: Chain, path: Path, progress: Callable[[int], None] | None) -> None:
    with BlockArchive(path) as archive:
        for block, certificate, _ in archive.blocks():
            try:
                chain.apply_certified(block, certificate)
            except (InvalidBlock, InvalidCertificate) as exc:
                raise BackupError(f"block {block.header.height} of {path} does not verify ({exc}); the blocks before it were imported, "
                                  "each verified; get the archive again from a node you trust") from None
            if progress is not None:
                progress(block.header.height)
