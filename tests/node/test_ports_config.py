"""The ports in node.toml: [channel] listen (the dApp channel port) and the loopback rule of
the plain HTTP port ([rpc] listen, [rpc] allow_remote)."""

import pytest

from chainnode.node.config import ConfigError, is_loopback, load_config, render_config


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def rendered(tmp_path, **kwargs):
    return write(tmp_path, render_config(
        name="node0", data_dir="data", genesis_file="genesis.json", key_file="node.key", p2p_listen="/ip4/127.0.0.1/tcp/30300",
        rpc_listen="127.0.0.1:8545", **kwargs,
    ))


def test_channel_listen_defaults_to_the_channel_port_on_every_interface(tmp_path):
    cfg = load_config(rendered(tmp_path))
    assert (cfg.channel_host, cfg.channel_port) == ("0.0.0.0", 20200)
    assert load_config(write(tmp_path, "")).channel_port == 20200  # a file without [channel] too
    assert not cfg.rpc_allow_remote


def test_channel_listen_is_written_and_read(tmp_path):
    cfg = load_config(rendered(tmp_path, channel_listen="127.0.0.1:20207"))
    assert (cfg.channel_host, cfg.channel_port) == ("127.0.0.1", 20207)
    assert (load_config(write(tmp_path, "[channel]\nlisten = '[::1]:20200'\n")).channel_host) == "::1"


@pytest.mark.parametrize(
    "text,match",
    [
        ("[channel]\nlisten = '20200'", r"\[channel\] listen must be host:port, like 0.0.0.0:20200"),
        ("[channel]\nlisten = '0.0.0.0:0'", r"\[channel\] listen must be host:port"),
        ("[channel]\nlisten = ':20200'", r"\[channel\] listen must be host:port"),
        ("[channel]\nlisten = 20200", r"\[channel\] listen must be a non-empty string"),
        ("[channel]\nport = 20200", r"unknown key\(s\) in \[channel\]: port"),
        ("[rpc]\nallow_remote = 'yes'", r"\[rpc\] allow_remote must be true or false"),
        ("[rpc]\nallow_remote = 1", r"\[rpc\] allow_remote must be true or false"),
    ],
)
def test_bad_port_settings(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("listen", ["0.0.0.0:8545", "10.0.0.5:8545", "[::]:8545", "node0.example.com:8545"])
def test_the_http_port_beyond_loopback_is_refused_without_the_opt_out(tmp_path, listen):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[rpc]\nlisten = '{listen}'\n"))
    message = str(info.value)
    assert "is not a loopback address" in message and "channel port ([channel] listen)" in message
    assert "allow_remote = true under [rpc]" in message and "127.0.0.1:8545" in message
    cfg = load_config(write(tmp_path, f"[rpc]\nlisten = '{listen}'\nallow_remote = true\n"))
    assert cfg.rpc_allow_remote and cfg.rpc_port == 8545


@pytest.mark.parametrize("listen", ["127.0.0.1:8545", "127.0.0.9:8545", "localhost:8545", "[::1]:8545"])
def test_loopback_addresses_need_no_opt_out(tmp_path, listen):
    assert load_config(write(tmp_path, f"[rpc]\nlisten = '{listen}'\n")).rpc_port == 8545


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.1") and not is_loopback("evil.localhost.example")
