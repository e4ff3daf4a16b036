"""ctypes binding to the system libcrypto (OpenSSL 3) for SM2 (signatures and ECDH) and SM3.

Only what the `sm` suite needs, declared with exact argument and return types: every
function that returns a pointer gets `restype = c_void_p` (the default int would truncate
it on 64-bit). ctypes releases the GIL around each call, so verifications on a thread pool
run in parallel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_void_p

from chainnode.crypto.errors import CryptoUnavailable

NID_SM2 = 1172
POINT_CONVERSION_UNCOMPRESSED = 4
EVP_PKEY_KEYPAIR = 0x87  # OSSL_KEYMGMT_SELECT_KEYPAIR | ALL_PARAMETERS (openssl/core_dispatch.h)
EVP_PKEY_PUBLIC_KEY = 0x86  # PUBLIC_KEY | ALL_PARAMETERS

_INSTALL_HINT = (
    "chainnode's `sm` suite needs OpenSSL 3 libcrypto with SM2 and SM3 "
    "(Debian/Ubuntu: apt-get install libssl3; RHEL: dnf install openssl-libs), "
    "or start the chain with the ed25519 suite"
)


def _load() -> ctypes.CDLL:
    candidates = ["libcrypto.so.3", ctypes.util.find_library("crypto"), "libcrypto.dylib"]
    errors = []
    for name in candidates:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise CryptoUnavailable(f"cannot load libcrypto ({'; '.join(errors)}): {_INSTALL_HINT}")


def _bind(lib: ctypes.CDLL) -> None:
    def fn(name: str, restype, *argtypes) -> None:
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise CryptoUnavailable(f"libcrypto has no {name}: {_INSTALL_HINT}") from None
        f.restype = restype
        f.argtypes = list(argtypes)

    fn("OpenSSL_version_num", ctypes.c_ulong)
    fn("ERR_clear_error", None)
    # Digests
    fn("EVP_sm3", c_void_p)
    fn("EVP_MD_CTX_new", c_void_p)
    fn("EVP_MD_CTX_free", None, c_void_p)
    fn("EVP_MD_CTX_set_pkey_ctx", None, c_void_p, c_void_p)
    fn("EVP_DigestSignInit", c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
    fn("EVP_DigestSign", c_int, c_void_p, c_void_p, POINTER(c_size_t), c_char_p, c_size_t)
    fn("EVP_DigestVerifyInit", c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
    fn("EVP_DigestVerify", c_int, c_void_p, c_char_p, c_size_t, c_char_p, c_size_t)
    # Key contexts
    fn("EVP_PKEY_CTX_new", c_void_p, c_void_p, c_void_p)
    fn("EVP_PKEY_CTX_new_from_name", c_void_p, c_void_p, c_char_p, c_char_p)
    fn("EVP_PKEY_CTX_free", None, c_void_p)
    fn("EVP_PKEY_CTX_set1_id", c_int, c_void_p, c_char_p, c_int)
    fn("EVP_PKEY_fromdata_init", c_int, c_void_p)
    fn("EVP_PKEY_fromdata", c_int, c_void_p, POINTER(c_void_p), c_int, c_void_p)
    fn("EVP_PKEY_free", None, c_void_p)
    # Parameter builder for EVP_PKEY_fromdata
    fn("OSSL_PARAM_BLD_new", c_void_p)
    fn("OSSL_PARAM_BLD_free", None, c_void_p)
    fn("OSSL_PARAM_BLD_push_utf8_string", c_int, c_void_p, c_char_p, c_char_p, c_size_t)
    fn("OSSL_PARAM_BLD_push_octet_string", c_int, c_void_p, c_char_p, c_char_p, c_size_t)
    fn("OSSL_PARAM_BLD_push_BN", c_int, c_void_p, c_char_p, c_void_p)
    fn("OSSL_PARAM_BLD_to_param", c_void_p, c_void_p)
    fn("OSSL_PARAM_free", None, c_void_p)
    # Big numbers and points (public key derivation)
    fn("BN_bin2bn", c_void_p, c_char_p, c_int, c_void_p)
    fn("BN_clear_free", None, c_void_p)
    fn("BN_CTX_new", c_void_p)
    fn("BN_CTX_free", None, c_void_p)
    fn("EC_GROUP_new_by_curve_name", c_void_p, c_int)
    fn("EC_GROUP_free", None, c_void_p)
    fn("EC_POINT_new", c_void_p, c_void_p)
    fn("EC_POINT_free", None, c_void_p)
    fn("EC_POINT_mul", c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
    fn("EC_POINT_point2oct", c_size_t, c_void_p, c_void_p, c_int, c_char_p, c_size_t, c_void_p)
    fn("EC_POINT_oct2point", c_int, c_void_p, c_void_p, c_char_p, c_size_t, c_void_p)  # checks the point is on the curve


def load_libcrypto() -> ctypes.CDLL:
    lib = _load()
    _bind(lib)
    if lib.OpenSSL_version_num() < 0x30000000:
        raise CryptoUnavailable(f"libcrypto is older than OpenSSL 3.0: {_INSTALL_HINT}")
    if not lib.EVP_sm3():
        raise CryptoUnavailable(f"libcrypto has no SM3 digest: {_INSTALL_HINT}")
    return lib
