"""Configuration: precedence, validation, --help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from engram_server.cli import build_parser, main
from engram_server.config import OPTIONS, Config, load

REPO = Path(__file__).resolve().parents[2]


def test_defaults():
    c = Config()
    assert (c.host, c.port, c.grpc_port) == ("127.0.0.1", 3300, 50051)
    assert str(c.data_dir).endswith("engram")


def test_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load({}, env={}).data_dir == tmp_path / "engram"


def test_precedence_flags_env_toml(tmp_path):
    toml = tmp_path / "engram.toml"
    toml.write_text('port = 4000\ngrpc-port = 0\nhost = "127.0.0.2"\ncors_origins = ["https://a"]\nmax_top_k = 7\n')
    env = {"ENGRAM_PORT": "5000", "ENGRAM_CONFIG": str(toml), "ENGRAM_MAX_TOP_K": "9"}
    c = load({"port": "6000"}, env=env)
    assert c.port == 6000 and c.grpc_port == 0 and c.host == "127.0.0.2"
    assert c.cors_origins == ["https://a"] and c.max_top_k == 9
    assert load({}, env=env).port == 5000
    assert load({}, env={"ENGRAM_CONFIG": str(toml)}).port == 4000


def test_bad_values_are_clear(tmp_path):
    with pytest.raises(ValueError, match="ENGRAM_PORT"):
        load({}, env={"ENGRAM_PORT": "abc"})
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    with pytest.raises(ValueError, match="unknown option 'nope'"):
        load({}, env={}, config_file=bad)


def test_access_flush_interval_is_bounded_and_reaches_the_engine():
    assert Config(access_flush_seconds=2.5).engine_config().access_flush_seconds == 2.5
    for bad in (0.0, -1.0, 7200.0):
        with pytest.raises(ValueError, match="--access-flush-seconds"):
            Config(access_flush_seconds=bad).validate()


def test_non_loopback_without_key_is_refused():
    with pytest.raises(ValueError, match="without an API key"):
        Config(host="0.0.0.0").validate()
    Config(host="0.0.0.0", api_key="x" * 32).validate()
    Config(host="::1").validate()


def test_encryption_key_parsing():
    assert Config(encryption_key="ab" * 32).encryption_key_bytes() == bytes([0xAB]) * 32
    with pytest.raises(ValueError, match="64 hex"):
        Config(encryption_key="abc").validate()


def test_cli_refuses_non_loopback_without_key(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "3999"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err


def test_help_documents_every_option_and_env_var():
    out = subprocess.run(
        [str(REPO / ".venv/bin/engram-server"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(out.split())
    for opt in OPTIONS:
        assert opt.flag in flat and opt.env in flat, opt.name
    assert "ENGRAM_CONFIG" in flat
    top = subprocess.run([str(REPO / ".venv/bin/engram-server"), "--help"], capture_output=True, text=True).stdout
    assert "serve" in top and "backup" in top and "rotate-key" in top


def test_docs_list_every_option():
    doc = (REPO / "docs/operations/configuration.md").read_text()
    for opt in OPTIONS:
        assert opt.env in doc and opt.flag in doc, opt.name


def test_parser_has_backup():
    args = build_parser().parse_args(["backup", "--data-dir", "/d", "--target", "/t"])
    assert args.command == "backup" and args.target == "/t"


def test_parser_has_rotate_key():
    args = build_parser().parse_args(["rotate-key", "--data-dir", "/d", "--new-key-file", "/k", "--batch-values", "10"])
    assert args.command == "rotate-key" and args.new_key_file == "/k" and args.batch_values == 10


def test_rotate_key_without_a_new_key_is_refused(tmp_path, capsys):
    from engram_server.cli import main

    assert main(["rotate-key", "--data-dir", str(tmp_path), "--encryption-key", "ab" * 32]) == 2
    assert "--new-key-file" in capsys.readouterr().err


CLUSTER = {
    "ENGRAM_CLUSTER_ETCD": "127.0.0.1:2379",
    "ENGRAM_CLUSTER_NATS": "nats://127.0.0.1:4222",
    "ENGRAM_CLUSTER_NODE_ID": "m1",
    "ENGRAM_ENCRYPTION_KEY": "ab" * 32,
}


def test_cluster_mode_is_off_unless_both_engines_are_named():
    assert not load(env={}).cluster_enabled
    cfg = load(env=CLUSTER)
    assert cfg.cluster_enabled and cfg.cluster_etcd == ["127.0.0.1:2379"] and cfg.cluster_shards == 64
    cfg.validate()
    assert cfg.cluster_url == "http://127.0.0.1:3300"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENGRAM_CLUSTER_NATS": ""}, "needs both --cluster-etcd"),
        ({"ENGRAM_CLUSTER_NODE_ID": ""}, "needs --cluster-node-id"),
        ({"ENGRAM_CLUSTER_NODE_ID": "m 1"}, "needs --cluster-node-id"),
        ({"ENGRAM_ENCRYPTION_KEY": ""}, "shared encryption key"),
        ({"ENGRAM_CLUSTER_SHARDS": "0"}, "--cluster-shards must be 1..1024"),
        ({"ENGRAM_CLUSTER_REPLICATION": "9"}, "--cluster-replication must be 1..5"),
        ({"ENGRAM_CLUSTER_LEASE_TTL": "0.1"}, "--cluster-lease-ttl"),
        ({"ENGRAM_CLUSTER_LOG_REPLICAS": "4"}, "--cluster-log-replicas"),
        ({"ENGRAM_CLUSTER_NATS": "127.0.0.1:4222"}, "is not nats://host:port"),
        ({"ENGRAM_CLUSTER_ETCD": "etcd one"}, "is not host:port"),
        ({"ENGRAM_CLUSTER_ETCD_USER": "root"}, "go together"),
        ({"ENGRAM_DUPLICATE_POLICY": "near"}, "not available in cluster mode"),
    ],
)
def test_cluster_settings_are_checked(change, message):
    env = {k: v for k, v in {**CLUSTER, **change}.items() if v}
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load(env=env).validate()


def test_cluster_secrets_are_redacted():
    secrets = {"ENGRAM_CLUSTER_NATS_PASSWORD": "hunter2-secret", "ENGRAM_CLUSTER_ETCD_PASSWORD": "p4ss"}
    cfg = load(env={**CLUSTER, **secrets})
    shown = str(cfg.redacted())
    assert "hunter2" not in shown and "p4ss" not in shown
