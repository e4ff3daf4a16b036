"""Node config files: defaults round-trip, every bad value is named."""

import pytest

from chainnode.node.config import CONFIG_BYTES_MAX, ConfigError, Limits, load_config, render_config


def write(tmp_path, text):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_rendered_default_loads(tmp_path):
    path = write(tmp_path, render_config(name="node0", data_dir="data", genesis_file="../genesis.json", key_file="node.key", p2p_listen="/ip4/127.0.0.1/tcp/30300", rpc_listen="127.0.0.1:8545"))
    cfg = load_config(path)
    assert cfg.name == "node0"
    assert cfg.data_dir == (tmp_path / "data").resolve()
    assert cfg.genesis_file == (tmp_path.parent / "genesis.json").resolve()
    assert (cfg.rpc_host, cfg.rpc_port) == ("127.0.0.1", 8545)
    assert cfg.limits == Limits() and cfg.password_file is None
    assert (cfg.state_history_blocks, cfg.block_history_blocks) == (10_000, 0)


def test_minimal_file_takes_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "[limits]\ntx_bytes_max = 4096\n"))
    assert cfg.limits.tx_bytes_max == 4096 and cfg.p2p_listen == "/ip4/127.0.0.1/tcp/30300"
    assert cfg.state_history_blocks == 10_000 and cfg.limits.snapshot_nodes_per_request_max == 4096
    assert load_config(write(tmp_path, "[storage]\nstate_history_blocks = 0\n")).state_history_blocks == 0  # an archive node
    assert cfg.block_history_blocks == 0  # every block body kept, as before pruning existed
    assert load_config(write(tmp_path, "[storage]\nblock_history_blocks = 128\n")).block_history_blocks == 128  # the minimum


@pytest.mark.parametrize(
    "text,match",
    [
        ("[nodes]\nname='x'", r"unknown section \[nodes\]"),
        ("[node]\nnmae='x'", r"unknown key\(s\) in \[node\]: nmae"),
        ("[limits]\ntx_bytes_max = 1", r"tx_bytes_max must be an integer in \[1024"),
        ("[limits]\ntx_bytes_max = '4096'", "tx_bytes_max must be an integer"),
        ("[limits]\npool_txs_max = 1.5", "pool_txs_max must be an integer"),
        ("[rpc]\nlisten = '8545'", "host:port"),
        ("[rpc]\nlisten = 'localhost:99999'", "host:port"),
        ("[network]\nlisten = '127.0.0.1:30300'", "multiaddr"),
        ("[log]\nlevel = 'loud'", "level must be"),
        ("[node]\nname = ''", "name must be a non-empty string"),
        ("node = 5", r"\[node\] must be a table"),
        ("[node\nname='x'", "not valid TOML"),
        ("[network]\nadvertise = '1.2.3.4:5'", r"advertise must be a list"),
        ("[network]\nadvertise = ['1.2.3.4:0']", r"\[network\] advertise: .*1 to 65535"),
        ("[network]\nadvertise = [" + ",".join(["'1.2.3.4:5'"] * 9) + "]", "at most 8"),
        ("[network]\nbootstrap = ['/ip4/1.2.3.4/tcp/5']", "must end in /p2p/<peer id>"),
        ("[network]\nbootstrap = ['/ip4/1.2.3.4/udp/5/p2p/12D3KooWx']", r"\[network\] bootstrap: .*not a dial address"),
        ("[network]\nbootstrap = [5]", "bootstrap must be a list"),
        ("[storage]\nstate_history_blocks = 1", r"state_history_blocks must be 0 .* or an integer in \[2,"),
        ("[storage]\nstate_history_blocks = -5", "state_history_blocks must be 0"),
        ("[storage]\nstate_history_blocks = '100'", "state_history_blocks must be 0"),
        ("[storage]\nstate_history_blocks = true", "state_history_blocks must be 0"),
        ("[storage]\nstate_history_blocks = 1099511627777", "state_history_blocks must be 0"),
        ("[storage]\nkeep = 3", r"unknown key\(s\) in \[storage\]: keep"),
        ("[storage]\nblock_history_blocks = 127", r"block_history_blocks must be 0 \(keep every block's .* or an integer in \[128, 1099511627776\]"),
        ("[storage]\nblock_history_blocks = -1", "block_history_blocks must be 0"),
        ("[storage]\nblock_history_blocks = 1099511627777", "block_history_blocks must be 0"),
        ("[storage]\nblock_history_blocks = '1000'", "block_history_blocks must be 0"),
        ("[storage]\nblock_history_blocks = 1000.0", "block_history_blocks must be 0"),
        ("[storage]\nblock_history_blocks = false", "block_history_blocks must be 0"),
        ("[storage]\nblocks_history_blocks = 1000",
         r"unknown key\(s\) in \[storage\]: blocks_history_blocks; known: block_history_blocks, state_history_blocks"),
        ("[limits]\nsnapshot_nodes_per_request_max = 0", r"snapshot_nodes_per_request_max must be an integer in \[1, 4096\]"),
        ("[limits]\nsnapshot_nodes_per_request_max = 5000", r"snapshot_nodes_per_request_max must be an integer in \[1, 4096\]"),
    ],
)
def test_bad_configs(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="chainnode init"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bin.toml")


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (CONFIG_BYTES_MAX + 1))
    with pytest.raises(ConfigError, match=f"larger than any node config \\({CONFIG_BYTES_MAX} bytes\\)"):
        load_config(big)


def test_advertise_and_bootstrap_are_canonical(tmp_path):
    cfg = load_config(write(tmp_path, "[network]\nadvertise = ['node1.Bank-A.example:30300', '203.0.113.7:30300']\n"
                                      "bootstrap = ['10.0.0.2:30300/p2p/12D3KooWpeer', '/dns/n2.example/tcp/1/p2p/12D3KooWother']\n"))
    assert cfg.p2p_advertise == ("/dns/node1.bank-a.example/tcp/30300", "/ip4/203.0.113.7/tcp/30300")
    assert cfg.p2p_bootstrap == (("12D3KooWpeer", "/ip4/10.0.0.2/tcp/30300"), ("12D3KooWother", "/dns/n2.example/tcp/1"))
    rendered = render_config(name="n", data_dir=".", genesis_file="g.json", key_file="k", p2p_listen="/ip4/0.0.0.0/tcp/1",
                             rpc_listen="127.0.0.1:1", advertise=cfg.p2p_advertise)
    assert load_config(write(tmp_path, rendered)).p2p_advertise == cfg.p2p_advertise
