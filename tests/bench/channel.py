"""Secure channel benchmark (issue 15): handshakes per second and channel throughput, each
beside a ceiling measured in the same run. Run: python -m tests.bench.channel [--quick]

- Handshakes: the whole handshake (three Noise messages and the two verdicts), both
  sides in this process over a trio memory stream, for each suite; the ceiling is the bare
  public-key work one XX handshake needs (two ephemeral key pairs, six DH), in a loop.
- Throughput: 1 MiB messages through SecureStream.send_message / receive_message over a
  socket pair (sender and receiver in this one thread, so each byte is sealed and opened
  here), against a raw loop of cryptography's SM4-GCM (Cipher(algorithms.SM4(key),
  modes.GCM(nonce))) that seals and opens the same bytes in the channel's packet size.
  Budget: the channel >= 0.7x the raw loop. ChaCha20-Poly1305 (the ed25519 suite's) the
  same way, for reference.

Prints one line per figure and exits 1 if the budget is missed. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from chainnode.channel.functions import SM4_KEY_BYTES
from chainnode.channel.handshake import Payload
from chainnode.channel.stream import PLAINTEXT_BYTES_MAX, SecureStream, secure
from chainnode.crypto import get_suite
from chainnode.crypto.sm import SM2

THROUGHPUT_RATIO_MIN = 0.7
MESSAGE_BYTES = 1 << 20
SUITES = ("sm", "ed25519")
GENESIS_HASH = b"\x11" * 32
MB = 1e6


def accept_all(payload: Payload, remote_static: bytes) -> None:
    return None  # the certificate check is the caller's policy, not the channel's cost


async def channel_pair(suite_name: str, keys: tuple[bytes, bytes], a: trio.abc.Stream, b: trio.abc.Stream) -> tuple[SecureStream, SecureStream]:
    """Both sides of one handshake, a client on `a` and a node on `b`: their keyed channels."""
    channels: dict[bool, SecureStream] = {}

    async def side(stream: trio.abc.Stream, initiator: bool, priv: bytes) -> None:
        payload = Payload("client" if initiator else "node", GENESIS_HASH)
        channels[initiator] = await secure(
            stream, initiator=initiator, suite_name=suite_name, purpose="rpc", certified_priv=priv, payload=payload, check=accept_all
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, a, True, keys[0])
        nursery.start_soon(side, b, False, keys[1])
    return channels[True], channels[False]


def handshake_rate(suite_name: str, count: int) -> float:
    suite = get_suite(suite_name)
    keys = (suite.generate_keypair()[0], suite.generate_keypair()[0])

    async def run() -> float:
        t = time.perf_counter()
        for _ in range(count):
            await channel_pair(suite_name, keys, *trio.testing.memory_stream_pair())
        return count / (time.perf_counter() - t)

    return trio.run(run)


def raw_dh_rate(suite_name: str, count: int) -> float:
    """Handshakes/s if one cost only its public-key work: 2 ephemeral key pairs and 6 DH
    (ee, es, se on each side), straight on the libraries."""
    if suite_name == "sm":
        sm2, suite = SM2(), get_suite("sm")
        priv, pub = suite.generate_keypair()

        def one() -> None:
            suite.generate_keypair()
            suite.generate_keypair()
            for _ in range(6):
                sm2.ecdh(priv, pub)

    else:
        peer = X25519PublicKey.from_public_bytes(X25519PrivateKey.generate().public_key().public_bytes_raw())
        key = X25519PrivateKey.generate()

        def one() -> None:
            X25519PrivateKey.generate().public_key()
            X25519PrivateKey.generate().public_key()
            for _ in range(6):
                key.exchange(peer)

    t = time.perf_counter()
    for _ in range(count):
        one()
    return count / (time.perf_counter() - t)


def channel_throughput(suite_name: str, total_bytes: int) -> float:
    """MB/s of message bytes through a keyed SecureStream pair over a socket pair."""
    suite = get_suite(suite_name)
    keys = (suite.generate_keypair()[0], suite.generate_keypair()[0])
    message = os.urandom(MESSAGE_BYTES)
    count = max(1, total_bytes // MESSAGE_BYTES)

    async def run() -> float:
        a, b = trio.socket.socketpair()
        sender, receiver = await channel_pair(suite_name, keys, trio.SocketStream(a), trio.SocketStream(b))

        async def send_all_messages() -> None:
            for _ in range(count):
                await sender.send_message(message)

        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all_messages)
            for _ in range(count):
                got = await receiver.receive_message()
                assert len(got) == MESSAGE_BYTES
        rate = count * MESSAGE_BYTES / (time.perf_counter() - t) / MB
        await sender.aclose()
        await receiver.aclose()
        return rate

    return trio.run(run)


def raw_sm4gcm_throughput(total_bytes: int) -> float:
    """MB/s of sealing and opening the same bytes with cryptography's SM4-GCM, one fresh
    context per packet (GCM needs one per nonce), no framing: the ceiling of the channel."""
    key = os.urandom(SM4_KEY_BYTES)
    data = os.urandom(MESSAGE_BYTES)
    algorithm = algorithms.SM4(key)
    count = max(1, total_bytes // MESSAGE_BYTES)
    n = 0
    t = time.perf_counter()
    for _ in range(count):
        for start in range(0, MESSAGE_BYTES, PLAINTEXT_BYTES_MAX):
            nonce = n.to_bytes(12, "big")
            n += 1
            enc = Cipher(algorithm, modes.GCM(nonce)).encryptor()
            sealed = enc.update(data[start : start + PLAINTEXT_BYTES_MAX]) + enc.finalize()
            dec = Cipher(algorithm, modes.GCM(nonce, enc.tag)).decryptor()
            dec.update(sealed)
            dec.finalize()
    return count * MESSAGE_BYTES / (time.perf_counter() - t) / MB


def raw_chacha_throughput(total_bytes: int) -> float:
    """The same raw loop with ChaCha20-Poly1305 (cryptography's AEAD class)."""
    aead = ChaCha20Poly1305(os.urandom(32))
    data = os.urandom(MESSAGE_BYTES)
    count = max(1, total_bytes // MESSAGE_BYTES)
    n = 0
    t = time.perf_counter()
    for _ in range(count):
        for start in range(0, MESSAGE_BYTES, PLAINTEXT_BYTES_MAX):
            nonce = n.to_bytes(12, "big")
            n += 1
            aead.decrypt(nonce, aead.encrypt(nonce, data[start : start + PLAINTEXT_BYTES_MAX], None), None)
    return count * MESSAGE_BYTES / (time.perf_counter() - t) / MB


def best_interleaved(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The best of `rounds` runs of each, taken in turn so that background load hits all alike."""
    best = {name: 0.0 for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], fn())
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer handshakes and bytes (CI smoke run)")
    args = ap.parse_args()
    rounds = 2 if args.quick else 5
    handshakes = 40 if args.quick else 200
    total_bytes = (8 if args.quick else 64) * MESSAGE_BYTES
    results: list[tuple[str, str, bool | None]] = []  # None: for reference, no budget

    for suite_name in SUITES:
        r = best_interleaved({"channel": lambda: handshake_rate(suite_name, handshakes), "raw": lambda: raw_dh_rate(suite_name, handshakes)}, rounds)
        text = f"{r['channel']:,.0f}/s vs public-key work alone {r['raw']:,.0f}/s = {r['channel'] / r['raw']:.2f}x"
        results.append((f"handshakes, {suite_name} suite", text, None))

    sm = best_interleaved({"channel": lambda: channel_throughput("sm", total_bytes), "raw": lambda: raw_sm4gcm_throughput(total_bytes)}, rounds)
    ratio = sm["channel"] / sm["raw"]
    results.append(
        (
            "throughput, SM4-GCM channel vs raw SM4-GCM",
            f"{sm['channel']:,.1f} MB/s vs {sm['raw']:,.1f} MB/s = {ratio:.2f}x (>= {THROUGHPUT_RATIO_MIN}x)",
            ratio >= THROUGHPUT_RATIO_MIN,
        )
    )
    cc = best_interleaved({"channel": lambda: channel_throughput("ed25519", total_bytes), "raw": lambda: raw_chacha_throughput(total_bytes)}, rounds)
    text = f"{cc['channel']:,.1f} MB/s vs {cc['raw']:,.1f} MB/s = {cc['channel'] / cc['raw']:.2f}x"
    results.append(("throughput, ChaChaPoly channel vs raw ChaCha20-Poly1305", text, None))

    width = max(len(r[0]) for r in results)
    setting = f"{MESSAGE_BYTES >> 20} MiB messages, sealed and opened in one thread"
    print(f"chainnode secure channel benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]}, {setting})")
    for name, text, ok in results:
        print(f"  {'info' if ok is None else 'PASS' if ok else 'FAIL'}  {name:<{width}}  {text}")
    return 0 if all(ok is not False for _, _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
