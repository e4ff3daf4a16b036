"""The ed25519 suite against RFC 8032 section 7.1."""

import hashlib

import pytest

from chainnode.crypto import InvalidKey, get_suite

VECTORS = [  # (secret seed, public key, message, signature)
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.fixture(scope="module")
def ed():
    return get_suite("ed25519")


@pytest.mark.parametrize("seed,pub,msg,sig", VECTORS)
def test_rfc8032_vectors(ed, seed, pub, msg, sig):
    seed, pub, msg, sig = (bytes.fromhex(x) for x in (seed, pub, msg, sig))
    assert ed.public_key(seed) == pub
    assert ed.sign(seed, msg) == sig
    assert ed.verify(pub, msg, sig)
    assert not ed.verify(pub, msg + b"x", sig)


def test_bad_inputs_return_false(ed):
    priv, pub = ed.generate_keypair()
    sig = ed.sign(priv, b"m")
    for bad_pub, bad_sig in [(pub, sig[:-1]), (pub, sig + b"0"), (pub[:-1], sig), (b"", sig), (pub, bytes(64)), (None, sig), (pub, "x" * 64), (bytes(32), sig)]:
        assert ed.verify(bad_pub, b"m", bad_sig) is False


def test_hash_and_address(ed):
    priv, pub = ed.generate_keypair()
    assert ed.hash(b"abc") == hashlib.sha256(b"abc").digest()
    assert ed.address(pub) == hashlib.sha256(pub).digest()[-20:]


def test_bad_private_key(ed):
    with pytest.raises(InvalidKey):
        ed.sign(b"short", b"m")


def test_unknown_suite_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        get_suite("rsa")
