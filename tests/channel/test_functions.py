"""The SM functions of the channel against independent implementations and published vectors:
SM2 ECDH and SM3 against gmssl (pure Python, written independently of OpenSSL), SM4 against
GB/T 32907-2016 Appendix A, SM4-GCM against RFC 8998 Appendix A.1."""

import hmac
import secrets

import pytest
from cryptography.exceptions import InvalidTag
from gmssl import func, sm2 as gm_sm2, sm3 as gm_sm3, sm4 as gm_sm4
from noise.exceptions import NoiseValueError

from chainnode.channel.functions import BACKEND, SM2DH, SM4GCM, SM3Hash, SM4GCMCipher, static_private_key, static_public_key
from chainnode.crypto import InvalidKey, get_suite
from chainnode.crypto.sm import SM2

SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


@pytest.fixture(scope="module")
def sm2():
    return SM2()


def test_sm2_ecdh_agrees_with_gmssl(sm2):
    suite = get_suite("sm")
    for _ in range(5):
        a, a_pub = suite.generate_keypair()
        b, b_pub = suite.generate_keypair()
        shared = sm2.ecdh(a, b_pub)
        assert shared == sm2.ecdh(b, a_pub)
        # gmssl's scalar multiplication k*P, computed in pure Python: x of b*A.
        reference = gm_sm2.CryptSM2(private_key=b.hex(), public_key=a_pub[1:].hex())._kg(int.from_bytes(b, "big"), a_pub[1:].hex())
        assert shared.hex() == reference[:64]


def test_sm2_ecdh_refuses_points_off_the_curve(sm2):
    priv, pub = get_suite("sm").generate_keypair()
    off_curve = pub[:-1] + bytes([pub[-1] ^ 1])
    for bad in (off_curve, b"\x04" + bytes(64), pub[:33], b"\x02" + pub[1:33] + bytes(32), "04" * 65):
        with pytest.raises(InvalidKey):
            sm2.ecdh(priv, bad)
    with pytest.raises(NoiseValueError):
        SM2DH().dh(priv, off_curve)


def test_sm3_agrees_with_gmssl():
    h = SM3Hash()
    for data in (b"", b"abc", b"abcd" * 16, secrets.token_bytes(1000)):
        assert h.hash(data).hex() == gm_sm3.sm3_hash(func.bytes_to_list(data))


def test_hmac_sm3_is_rfc2104_over_gmssl_sm3():
    key, data = secrets.token_bytes(32), secrets.token_bytes(100)

    def gm(x: bytes) -> bytes:
        return bytes.fromhex(gm_sm3.sm3_hash(func.bytes_to_list(x)))

    block = key.ljust(64, b"\x00")
    expected = gm(bytes(k ^ 0x5C for k in block) + gm(bytes(k ^ 0x36 for k in block) + data))
    assert BACKEND.hmac(key, data, SM3Hash().fn) == expected
    assert hmac.compare_digest(expected, BACKEND.hmac(key, data, SM3Hash().fn))


def test_sm4_gbt32907_vectors():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
    assert enc.update(SM4_KEY).hex() == "681edf34d206965e86b3e94f536e4246"  # Appendix A.1
    block = SM4_KEY
    for _ in range(1_000_000):  # Appendix A.2: the same block encrypted a million times
        block = enc.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"
    gm = gm_sm4.CryptSM4()
    gm.set_key(SM4_KEY, gm_sm4.SM4_ENCRYPT)
    assert gm.crypt_ecb(SM4_KEY)[:16].hex() == "681edf34d206965e86b3e94f536e4246"


# RFC 8998 Appendix A.1, "SM4-GCM Test Vectors".
RFC8998_IV = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")


def test_sm4_gcm_rfc8998_vector():
    aead = SM4GCM(SM4_KEY + bytes(16))  # a Noise key is 32 bytes; SM4 keys with the first 16
    sealed = aead.encrypt(RFC8998_IV, RFC8998_PT, RFC8998_AAD)
    assert sealed == RFC8998_CT + RFC8998_TAG
    assert aead.decrypt(RFC8998_IV, sealed, RFC8998_AAD) == RFC8998_PT


@pytest.mark.parametrize("tamper", ["ciphertext", "tag", "aad", "nonce", "short"])
def test_sm4_gcm_refuses_tampering(tamper):
    aead = SM4GCM(SM4_KEY + bytes(16))
    sealed, iv, aad = bytearray(RFC8998_CT + RFC8998_TAG), RFC8998_IV, RFC8998_AAD
    if tamper == "ciphertext":
        sealed[5] ^= 0x01
    elif tamper == "tag":
        sealed[-1] ^= 0x80
    elif tamper == "aad":
        aad = aad[:-1] + b"\x00"
    elif tamper == "nonce":
        iv = iv[:-1] + b"\x00"
    else:
        sealed = sealed[:15]
    with pytest.raises(InvalidTag):
        aead.decrypt(iv, bytes(sealed), aad)


def test_noise_nonce_layout():
    assert SM4GCMCipher.format_nonce(1) == bytes(4) + (1).to_bytes(8, "big")
    assert SM4GCMCipher.format_nonce(2**64 - 1) == bytes(4) + b"\xff" * 8


def test_static_keys_are_the_certified_keys():
    sm = get_suite("sm")
    priv, pub = sm.generate_keypair()
    assert static_private_key("sm", priv) == priv and static_public_key("sm", pub) == pub
    ed = get_suite("ed25519")
    priv, pub = ed.generate_keypair()
    from nacl.bindings import crypto_scalarmult_base

    assert crypto_scalarmult_base(static_private_key("ed25519", priv)) == static_public_key("ed25519", pub)
