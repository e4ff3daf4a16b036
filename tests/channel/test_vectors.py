"""The handshake's fixed test vector: fixed static and ephemeral keys give exactly the
bytes docs/protocol.md lists ("Secure channel", "Test vector"), so another implementation
can be checked against ours byte for byte, and ours cannot drift unnoticed."""

import re
from pathlib import Path

from gmssl import sm2 as gm_sm2

from chainnode.channel.handshake import Payload, Verdict, new_noise
from chainnode.crypto.sm import SM2_ORDER, sm3

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def key(label: bytes) -> bytes:
    d = sm3(b"chainnode channel test vector: " + label)
    assert 1 <= int.from_bytes(d, "big") <= SM2_ORDER - 2
    return d


def transcript() -> dict[str, bytes]:
    si, ei, sr, er = key(b"initiator static"), key(b"initiator ephemeral"), key(b"responder static"), key(b"responder ephemeral")
    pi = Payload("client", b"", credentials=b"client chain").encode()
    pr = Payload("node", bytes(range(32)), credentials=b"node chain").encode()
    i = new_noise("sm", "rpc", si, initiator=True, ephemeral_priv=ei)
    r = new_noise("sm", "rpc", sr, initiator=False, ephemeral_priv=er)
    m1 = bytes(i.write_message(b""))
    assert r.read_message(m1) == b""
    m2 = bytes(r.write_message(pr))
    assert i.read_message(m2) == pr
    m3 = bytes(i.write_message(pi))
    assert r.read_message(m3) == pi
    accepted = Verdict("").encode()
    vi, vr = i.encrypt(accepted), r.encrypt(accepted)
    assert r.decrypt(vi) == accepted and i.decrypt(vr) == accepted
    assert i.get_handshake_hash() == r.get_handshake_hash()
    return {"si": si, "ei": ei, "sr": sr, "er": er, "pi": pi, "pr": pr, "m1": m1, "m2": m2, "m3": m3, "vi": vi, "vr": vr, "h": i.get_handshake_hash()}


EXPECTED = {
    "si": "7eec84c6ff73f5e37c5e4187f3f871e3663e82a1afd4c5cbd0c77b87c25f6867",
    "ei": "2a99b81512f02b6ae23c4cfa371fb99d226b249288b512ec724dfc6257284a09",
    "sr": "3bb17b70058cfb6882f8e7545bd4d75769f515761390e835cff3733133c0f5d0",
    "er": "43836303294102eae539578d31d4cb90fdb779e2276d3a221599558341d76021",
    "pi": "9601a6636c69656e74c400c400c400c40c636c69656e7420636861696e",
    "pr": "9601a46e6f6465c420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fc400c400c40a6e6f646520636861696e",
    "m1": "04e3f94b0d61b271e88ebafe35f5fd8bc64d2db77aa1f423305300d2086b77b8903d56b126186eb1ae1c099526103386870602c16a5057a43c7e4e13c1c5a6346b",
    "m2": (
        "04a71162d9261e299bff2f44437cbd45ea85ee06b2a4e34072769760fde29d224ebe64ba4404e3990c9188445b83224090b695bf6ccf5f279473daed5eb1fb5027"
        "5112b8287a5548013d8e49f0e57eb45b8c681bea26c72f88b98ad8b3d4d0f88780eb19b3b85cdf3a1eab38705d35c213c93c9ff14cfe7363acee65bb1e3ae018"
        "7af5a93884ef5f90a73a6e550a01dee639c60d08066ce52ffc3fb638ac59e2cb97924f64040de42d02424a23c51e2c28723d7918bcfbf804d9ea02f4551ffc47"
        "3764c4c005bc71690abb2395482fcd05fe73a92148b391587ab5"
    ),
    "m3": (
        "55e045a8121e2cb7e1d2f270bf50364f460af9ce80e9a4f52eb457ea0782d159fc0170fd373f09f8284ef048276e697a7700f7da0756428ee66704f56331d2b5"
        "25b079225bfe719976851ea28a5a73862c215eded7a64a90dd72da6a781f98e05e33e2e00d4808b20dc40ad8448da561a2182f4f63257a63aaa5e37bbca3"
    ),
    "vi": "d07a8e8532b49bfdb7c9f72d919271caf947726c",
    "vr": "005070949d53122d07f5a273c1c6d041b60aa519",
    "h": "8109d6d34cbfa3d201e1a7c0d4458415aabf4c761d76ca6bfded844dc7a6f6e1",
}


def test_transcript_is_the_vector():
    got = transcript()
    assert {name: value.hex() for name, value in got.items()} == EXPECTED
    assert [len(got[m]) for m in ("m1", "m2", "m3")] == [65, 65 + 65 + 16 + 57 + 16, 65 + 16 + 29 + 16]


def test_ephemeral_keys_on_the_wire_agree_with_gmssl():
    """Messages 1 and 2 open with the ephemeral public keys: e·G by an independent implementation."""
    got = transcript()
    curve = gm_sm2.CryptSM2(private_key="01", public_key="")
    for priv, message in (("ei", "m1"), ("er", "m2")):
        point = curve._kg(int.from_bytes(got[priv], "big"), gm_sm2.default_ecc_table["g"])
        assert got[message][:65].hex() == "04" + point


def test_docs_list_the_vector():
    text = DOC.read_text()
    section = text[text.index("**Test vector**") :]
    section = section[: section.index("\n## ")]
    listed = re.findall(r"`([0-9a-f]{16,})`", section)
    assert listed == [EXPECTED[name] for name in ("si", "ei", "sr", "er", "pi", "pr", "m1", "m2", "m3", "vi", "vr", "h")]
