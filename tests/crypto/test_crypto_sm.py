"""SM2/SM3/SM4 against the national standards and against gmssl, the reference."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import func as gm_func, sm2 as gm_sm2, sm3 as gm_sm3

from chainnode.crypto import InvalidKey, get_suite
from chainnode.crypto.sm import DEFAULT_ID, SM2_ORDER

# GB/T 32918.5-2016 Annex A
D = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
MSG = b"message digest"


@pytest.fixture(scope="module")
def sm():
    return get_suite("sm")


def gmssl_for(priv: bytes, pub: bytes) -> gm_sm2.CryptSM2:
    g = gm_sm2.CryptSM2(private_key=priv.hex(), public_key=pub[1:].hex())
    g.public_key = pub[1:].hex()  # gmssl's lstrip("04") eats leading 0/4 digits of x
    return g


def test_standard_vector_verifies(sm):
    pub = sm.public_key(bytes.fromhex(D))
    assert sm.verify(pub, MSG, bytes.fromhex(R + S))


def test_gmssl_with_the_standard_nonce_reproduces_the_vector(sm):
    pub = sm.public_key(bytes.fromhex(D))
    g = gmssl_for(bytes.fromhex(D), pub)
    assert g.sign_with_sm3(MSG, K).upper() == R + S


def test_standard_vector_fails_on_wrong_message_or_id(sm):
    pub = sm.public_key(bytes.fromhex(D))
    sig = bytes.fromhex(R + S)
    assert not sm.verify(pub, b"message digesu", sig)
    sm2 = sm._sm2
    assert not sm2.verify(pub, MSG, sig, dist_id=b"1234567812345679")
    assert not sm2.verify(pub, MSG, sig, dist_id=b"")


def test_signature_with_another_id_does_not_verify(sm):
    priv, pub = sm.generate_keypair()
    sig = sm._sm2.sign(priv, MSG, dist_id=b"ALICE123@YAHOO.COM")
    assert sm._sm2.verify(pub, MSG, sig, dist_id=b"ALICE123@YAHOO.COM")
    assert not sm.verify(pub, MSG, sig)


def test_cross_check_with_gmssl_200_keys_both_ways(sm):
    rng = random.Random(7)
    for i in range(200):
        priv, pub = sm.generate_keypair()
        msg = rng.randbytes(rng.randrange(0, 300))
        g = gmssl_for(priv, pub)
        ours = sm.sign(priv, msg)
        assert g.verify_with_sm3(ours.hex(), msg), f"gmssl rejects our signature, key {i}"
        theirs = bytes.fromhex(g.sign_with_sm3(msg, gm_func.random_hex(64)))
        assert sm.verify(pub, msg, theirs), f"we reject gmssl's signature, key {i}"
        assert not sm.verify(pub, msg + b"!", theirs)


def test_public_key_matches_gmssl_point_multiplication(sm):
    priv, pub = sm.generate_keypair()
    g = gmssl_for(priv, pub)
    assert g._kg(int(priv.hex(), 16), g.ecc_table["g"]) == pub[1:].hex()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda pub, sig: (pub, sig[:-1]),  # truncated
        lambda pub, sig: (pub, sig + b"\x00"),  # padded
        lambda pub, sig: (pub, b""),
        lambda pub, sig: (pub, bytes(32) + sig[32:]),  # r = 0
        lambda pub, sig: (pub, sig[:32] + bytes(32)),  # s = 0
        lambda pub, sig: (pub, SM2_ORDER.to_bytes(32, "big") + sig[32:]),  # r = n
        lambda pub, sig: (pub, sig[:32] + SM2_ORDER.to_bytes(32, "big")),  # s = n
        lambda pub, sig: (pub, b"\xff" * 64),  # r, s > n
        lambda pub, sig: (pub, bytes(reversed(sig))),
        lambda pub, sig: (pub[:-1] + bytes([pub[-1] ^ 1]), sig),  # off-curve point
        lambda pub, sig: (b"\x02" + pub[1:33], sig),  # compressed form not accepted
        lambda pub, sig: (b"\x05" + pub[1:], sig),  # bad prefix
        lambda pub, sig: (bytes(65), sig),
        lambda pub, sig: (b"\x04" + bytes(64), sig),  # point at "zero", not on the curve
        lambda pub, sig: (pub[:64], sig),
        lambda pub, sig: ("not bytes", sig),
        lambda pub, sig: (pub, None),
        lambda pub, sig: (None, None),
        lambda pub, sig: (pub, bytearray(sig)),
    ],
)
def test_bad_keys_and_signatures_return_false(sm, mutate):
    priv, pub = sm.generate_keypair()
    sig = sm.sign(priv, MSG)
    bad_pub, bad_sig = mutate(pub, sig)
    assert sm.verify(bad_pub, MSG, bad_sig) is False


def test_garbage_never_raises(sm):
    rng = random.Random(3)
    priv, pub = sm.generate_keypair()
    for _ in range(300):
        assert sm.verify(rng.randbytes(rng.choice([0, 33, 64, 65, 66])), rng.randbytes(20), rng.randbytes(rng.choice([0, 63, 64, 65]))) is False
    assert sm.verify(pub, "text", sm.sign(priv, b"text")) is False


@pytest.mark.parametrize("priv", [bytes(32), SM2_ORDER.to_bytes(32, "big"), (SM2_ORDER - 1).to_bytes(32, "big"), b"\x01" * 31, b"", b"\xff" * 32])
def test_out_of_range_private_keys_are_refused(sm, priv):
    with pytest.raises(InvalidKey):
        sm.public_key(priv)
    with pytest.raises(InvalidKey):
        sm.sign(priv, b"x")


def test_address_is_sm3_of_xy(sm):
    priv, pub = sm.generate_keypair()
    assert sm.address(pub) == sm.hash(pub[1:])[-20:]
    assert len(sm.address(pub)) == 20
    with pytest.raises(InvalidKey):
        sm.address(pub[:64])


def test_keypair_from_private_is_deterministic(sm):
    priv, pub = sm.generate_keypair()
    assert sm.keypair_from_private(priv) == (priv, pub)


def test_signing_is_randomised_and_both_verify(sm):
    priv, pub = sm.generate_keypair()
    a, b = sm.sign(priv, MSG), sm.sign(priv, MSG)
    assert a != b and sm.verify(pub, MSG, a) and sm.verify(pub, MSG, b)


def test_verification_from_many_threads(sm):
    keys = [sm.generate_keypair() for _ in range(8)]
    jobs = []
    rng = random.Random(11)
    for i in range(400):
        priv, pub = keys[i % 8]
        msg = rng.randbytes(50)
        sig = sm.sign(priv, msg)
        good = rng.random() < 0.5
        jobs.append((pub, msg if good else msg + b"x", sig, good))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: sm.verify(j[0], j[1], j[2]), jobs))
    assert results == [j[3] for j in jobs]


def test_sm3_standard_vectors(sm):
    assert sm.hash(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm.hash(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    for n in (0, 1, 55, 56, 64, 200, 1000):
        data = bytes(range(256))[:n] * 3
        assert sm.hash(data).hex() == gm_sm3.sm3_hash(gm_func.bytes_to_list(data))


def test_sm4_standard_vector():
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_default_id_is_the_standard_one():
    assert DEFAULT_ID == b"1234567812345678"
