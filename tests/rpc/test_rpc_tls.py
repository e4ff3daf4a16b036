"""Standard TLS on the HTTP port ([rpc] tls_cert / tls_key): HTTPS through the real server
with a real certificate, and clear refusals of files that cannot be used."""

from __future__ import annotations

import datetime
import ssl
from functools import partial

import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chainnode.node.config import ConfigError, load_config
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.server import RpcApp, TlsConfigError, serve_rpc, tls_context
from tests.helpers import free_port


def self_signed(tmp_path) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "rpc.crt", tmp_path / "rpc.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_with_a_tls_certificate(nursery, tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    dispatcher = Dispatcher()

    async def number(params):
        return 7

    dispatcher.register("getBlockNumber", number)
    port = free_port()
    urls = await nursery.start(partial(serve_rpc, tls=tls_context(cert_file, key_file)), RpcApp(dispatcher), "127.0.0.1", port)
    assert urls == [f"https://127.0.0.1:{port}"]
    trust = ssl.create_default_context(cafile=str(cert_file))
    request = {"jsonrpc": "2.0", "id": 1, "method": "getBlockNumber", "params": []}
    async with httpx.AsyncClient(verify=trust) as client:
        with trio.fail_after(10):
            assert (await client.post(f"https://localhost:{port}/", json=request)).json()["result"] == 7
    # a plain-HTTP client gets no answer in plain text, and the server goes on
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            with trio.fail_after(10):
                await client.post(f"http://localhost:{port}/", json=request)
    async with httpx.AsyncClient(verify=trust) as client:
        with trio.fail_after(10):
            assert (await client.post(f"https://localhost:{port}/", json=request)).json()["result"] == 7


def test_unusable_tls_files_are_refused_with_the_files_named(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(TlsConfigError, match=r"garbage.pem .*\[rpc\] tls_cert / tls_key.*PEM"):
        tls_context(tmp_path / "garbage.pem", key_file)
    with pytest.raises(TlsConfigError, match="missing.key"):
        tls_context(cert_file, tmp_path / "missing.key")


def test_tls_settings_in_node_toml(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("[rpc]\ntls_cert = 'rpc.crt'\ntls_key = 'rpc.key'\n")
    cfg = load_config(path)
    assert (cfg.rpc_tls_cert, cfg.rpc_tls_key) == ((tmp_path / "rpc.crt").resolve(), (tmp_path / "rpc.key").resolve())
    path.write_text("[rpc]\ntls_cert = 'rpc.crt'\n")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_config(path)
    path.write_text("")
    assert load_config(path).rpc_tls_cert is None
