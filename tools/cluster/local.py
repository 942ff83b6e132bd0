"""A local three-host cluster on loopback: 3 etcd members, 3 NATS JetStream servers, N Engram nodes.

`make cluster` runs `python -m tools.cluster.local up` (and `down` to stop it); the cluster tests
(tests/cluster) start the same processes through `LocalCluster`. Every process is started from the
binaries `make cluster-tools` builds (build/cluster/bin), gets its own data directory under the
cluster's directory, and is stopped by its recorded PID only: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "build" / "cluster" / "bin"
DEFAULT_DIR = ROOT / "build" / "cluster" / "local"


# etcd client and peer, NATS client, cluster routes and monitoring: 1xxxx for host 1, 2xxxx, 3xxxx.
FIXED_PORTS = (12379, 12380, 14222, 16222, 18222)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (held open together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()
        (self.log.parent / f"{self.name}.pid").write_text(str(self.popen.pid))

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        (self.log.parent / f"{self.name}.pid").unlink(missing_ok=True)
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGCONT)
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(5)


@dataclass
class LocalCluster:
    """Processes of a local cluster; `start()` returns once every part answers."""

    base: Path
    nodes: int = 3
    shards: int = 8
    replication: int = 2
    lease_ttl: float = 2.0
    encryption_key: str = field(default_factory=lambda: secrets.token_hex(32))
    api_key: str = ""
    nats_user: str = "engram"
    nats_password: str = field(default_factory=lambda: secrets.token_hex(16))
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)
    etcd: list[Proc] = field(default_factory=list)
    nats: list[Proc] = field(default_factory=list)
    engram: list[Proc] = field(default_factory=list)
    etcd_client: list[str] = field(default_factory=list)
    nats_client: list[str] = field(default_factory=list)
    nats_monitor: list[int] = field(default_factory=list)
    http_ports: list[int] = field(default_factory=list)
    fixed_ports: bool = False  # `make cluster`: the documented ports (FIXED_PORTS) instead of free ones
    tls: bool = False  # TLS from the nodes to etcd and NATS, with a CA made for this cluster
    # Host i's address, and its network namespace (tests/cluster/test_partition.py): etcd, NATS and
    # the Engram node of host i run inside it (`ip netns exec`), each on its standard ports.
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    netns: list[str] = field(default_factory=list)

    def host(self, i: int) -> str:
        return self.hosts[i % len(self.hosts)]

    def _in_host(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns[i % len(self.netns)], *argv] if self.netns else argv

    # --- the control plane and the log ---------------------------------------------------
    def _plan_ports(self) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        if self.netns:  # a host each: the standard ports
            ports = [2379] * 3 + [2380] * 3 + [4222] * 3 + [6222] * 3 + [8222] * 3 + [3300] * self.nodes
        elif self.fixed_ports:
            ports = [p + 10_000 * i for p in FIXED_PORTS for i in range(3)] + [3311 + i for i in range(self.nodes)]
            busy = [p for p in ports if not _port_free(p)]
            if busy:
                raise RuntimeError(f"ports in use on 127.0.0.1: {busy}; `make cluster-down` stops a local cluster")
        else:
            ports = free_ports(5 * 3 + self.nodes)
        etcd_c, etcd_p = ports[0:3], ports[3:6]
        nats_c, nats_r, nats_m = ports[6:9], ports[9:12], ports[12:15]
        self.http_ports = ports[15:]
        return etcd_c, etcd_p, nats_c, nats_r, nats_m

    def start(self, timeout: float = 60.0) -> None:
        for b in ("etcd", "nats-server"):
            if not (BIN / b).exists():
                raise RuntimeError(f"{BIN / b} is missing: run `make cluster-tools`")
        self.base.mkdir(parents=True, exist_ok=True)
        etcd_c, etcd_p, nats_c, nats_r, nats_m = self._plan_ports()
        tls_dir = self.base / "tls"
        if self.tls:
            make_certificates(tls_dir)
        etcd_scheme = "https" if self.tls else "http"
        etcd_tls = (
            ["--cert-file", str(tls_dir / "server.pem"), "--key-file", str(tls_dir / "server-key.pem")]
            if self.tls
            else []
        )
        initial = ",".join(f"e{i + 1}=http://{self.host(i)}:{etcd_p[i]}" for i in range(3))
        for i in range(3):
            d = self.base / f"etcd{i + 1}"
            self.etcd.append(
                Proc(
                    f"etcd{i + 1}",
                    self._in_host(
                        i,
                        [
                            str(BIN / "etcd"),
                            "--name",
                            f"e{i + 1}",
                            "--data-dir",
                            str(d / "data"),
                            "--listen-client-urls",
                            f"{etcd_scheme}://{self.host(i)}:{etcd_c[i]}",
                            "--advertise-client-urls",
                            f"{etcd_scheme}://{self.host(i)}:{etcd_c[i]}",
                            "--listen-peer-urls",
                            f"http://{self.host(i)}:{etcd_p[i]}",
                            "--initial-advertise-peer-urls",
                            f"http://{self.host(i)}:{etcd_p[i]}",
                            "--initial-cluster-token",
                            "engram-local",
                            "--initial-cluster",
                            initial,
                            "--initial-cluster-state",
                            "new",
                            "--heartbeat-interval",
                            "50",
                            "--election-timeout",
                            "500",
                            "--log-level",
                            "warn",
                            "--listen-metrics-urls",
                            "",
                            "--enable-pprof=false",
                            *etcd_tls,
                        ],
                    ),
                    self.base / "logs" / f"etcd{i + 1}.log",
                )
            )
        self.etcd_client = [f"{etcd_scheme}://{self.host(i)}:{p}" for i, p in enumerate(etcd_c)]
        routes = ", ".join(f"nats-route://{self.host(i)}:{p}" for i, p in enumerate(nats_r))
        for i in range(3):
            d = self.base / f"nats{i + 1}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "nats.conf"
            nats_tls = (
                f'tls {{ cert_file: "{tls_dir / "server.pem"}", key_file: "{tls_dir / "server-key.pem"}", '
                f'ca_file: "{tls_dir / "ca.pem"}" }}'
                if self.tls
                else ""
            )
            conf.write_text(
                f"""server_name: n{i + 1}
listen: {self.host(i)}:{nats_c[i]}
http: {self.host(i)}:{nats_m[i]}
ping_interval: "2s"
ping_max: 2
max_payload: 8MB
authorization {{ user: "{self.nats_user}", password: "{self.nats_password}" }}
{nats_tls}
jetstream {{ store_dir: "{d / "js"}", sync_interval: always }}
cluster {{
  name: engram
  listen: {self.host(i)}:{nats_r[i]}
  routes: [ {routes} ]
}}
"""
            )
            self.nats.append(
                Proc(
                    f"nats{i + 1}",
                    self._in_host(i, [str(BIN / "nats-server"), "-c", str(conf)]),
                    self.base / "logs" / f"nats{i + 1}.log",
                )
            )
        self.nats_client = [f"{'tls' if self.tls else 'nats'}://{self.host(i)}:{p}" for i, p in enumerate(nats_c)]
        self.nats_monitor = list(nats_m)
        for p in self.etcd + self.nats:
            p.start()
        deadline = time.monotonic() + timeout
        for i in range(3):
            _wait_http(f"http://{self.host(i)}:{nats_m[i]}/healthz?js-enabled-only=true", deadline, self.nats[i])
        for i in range(3):
            _wait_http(
                f"{self.etcd_client[i]}/health", deadline, self.etcd[i], tls_dir / "ca.pem" if self.tls else None
            )
        for i in range(self.nodes):
            self.engram.append(self._engram_proc(i))
            self.engram[i].start()
        if self.nodes:
            self.wait_healthy(max(5.0, deadline - time.monotonic()))

    # --- Engram nodes ----------------------------------------------------------------------
    def node_url(self, i: int) -> str:
        return f"http://{self.host(i)}:{self.http_ports[i]}"

    def _engram_proc(self, i: int) -> Proc:
        # Only this cluster's settings: an ENGRAM_* variable of the caller's (a key, a data
        # directory) must not leak into its nodes.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
        env.update(
            {
                "ENGRAM_HOST": self.host(i),
                "ENGRAM_PORT": str(self.http_ports[i]),
                "ENGRAM_GRPC_PORT": "0",
                "ENGRAM_DATA_DIR": str(self.base / f"node{i + 1}" / "data"),
                "ENGRAM_ENCRYPTION_KEY": self.encryption_key,
                # Each node lists its own host's etcd member and NATS server first.
                "ENGRAM_CLUSTER_ETCD": ",".join(_rotate(self.etcd_client, i)),
                "ENGRAM_CLUSTER_NATS": ",".join(_rotate(self.nats_client, i)),
                "ENGRAM_CLUSTER_NATS_USER": self.nats_user,
                "ENGRAM_CLUSTER_NATS_PASSWORD": self.nats_password,
                "ENGRAM_CLUSTER_NODE_ID": f"m{i + 1}",
                "ENGRAM_CLUSTER_ADVERTISE_URL": self.node_url(i),
                "ENGRAM_CLUSTER_SHARDS": str(self.shards),
                "ENGRAM_CLUSTER_REPLICATION": str(self.replication),
                "ENGRAM_CLUSTER_LEASE_TTL": str(self.lease_ttl),
                "ENGRAM_ACCESS_LOG": "false",
                "ENGRAM_SHUTDOWN_TIMEOUT": "5",
            }
        )
        if self.api_key:
            env["ENGRAM_API_KEY"] = self.api_key
        if self.tls:
            env["ENGRAM_CLUSTER_TLS_CA"] = str(self.base / "tls" / "ca.pem")
        env.update(self.extra_env)
        return Proc(
            f"node{i + 1}",
            self._in_host(i, [self.python, "-m", "engram_server.cli", "serve"]),
            self.base / "logs" / f"node{i + 1}.log",
            env,
        )

    def restart_node(self, i: int) -> None:
        self.engram[i].stop()
        self.engram[i] = self._engram_proc(i)
        self.engram[i].start()

    def status(self, i: int = 0) -> dict[str, object]:
        with urllib.request.urlopen(self.request(i, "/v1/cluster/status"), timeout=5) as r:
            data: dict[str, object] = json.loads(r.read())
            return data

    def request(self, i: int, path: str) -> urllib.request.Request:
        req = urllib.request.Request(self.node_url(i) + path)
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        return req

    def wait_healthy(self, timeout: float = 30.0, nodes: list[int] | None = None) -> dict[str, object]:
        """Wait until every given node (all running ones by default) reports `healthy: true`."""
        deadline = time.monotonic() + timeout
        idx = nodes if nodes is not None else [i for i, p in enumerate(self.engram) if p.alive()]
        last: object = None
        while time.monotonic() < deadline:
            try:
                states = [self.status(i) for i in idx]
                if all(s.get("healthy") for s in states):
                    return states[0]
                last = states[0]
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
            for i in idx:
                if not self.engram[i].alive():
                    raise RuntimeError(f"node{i + 1} exited; see {self.engram[i].log}:\n{_tail(self.engram[i].log)}")
            time.sleep(0.2)
        raise TimeoutError(f"cluster not healthy after {timeout:.0f} s; last status: {last}")

    def stop(self) -> None:
        for p in self.engram + self.nats + self.etcd:
            try:
                p.stop()
            except Exception:
                p.kill()


def make_certificates(d: Path) -> None:
    """A CA and a certificate for 127.0.0.1 / localhost signed by it (ca.pem, server.pem,
    server-key.pem), for the TLS between the nodes and etcd and NATS."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "engram local cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH, x509.OID_CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(d / "server-key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _wait_http(url: str, deadline: float, proc: Proc, ca: Path | None = None) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited; see {proc.log}:\n{_tail(proc.log)}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not answer {url}")


def _rotate(items: list[str], i: int) -> list[str]:
    k = i % len(items)
    return items[k:] + items[:k]


def _live_recorded(base: Path) -> bool:
    """Whether a process recorded under base/logs still runs; stale PID files are removed."""
    live = False
    for f in (base / "logs").glob("*.pid"):
        try:
            os.kill(int(f.read_text()), 0)
            live = True
        except (ValueError, ProcessLookupError):
            f.unlink()
        except PermissionError:
            live = True
    return live


def _kill_recorded(base: Path) -> int:
    """Stop every process whose PID file is under base/logs (SIGTERM, then SIGKILL)."""
    pids = []
    for f in sorted((base / "logs").glob("*.pid")):
        with contextlib.suppress(ValueError):
            pids.append(int(f.read_text()))
        f.unlink()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(pids)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.cluster.local", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down"])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where data, logs and PID files go")
    p.add_argument("--nodes", type=int, default=3)
    args = p.parse_args(argv)
    if args.command == "down":
        n = _kill_recorded(args.dir)
        print(f"stopped {n} processes of the local cluster in {args.dir}")
        return 0
    if _live_recorded(args.dir):
        print(f"a local cluster runs already (PID files in {args.dir / 'logs'}); `make cluster-down` stops it")
        return 1
    # The cluster's data key and NATS password stay with its data: a second `up` reopens it.
    args.dir.mkdir(parents=True, exist_ok=True)
    secrets_file = args.dir / "secrets.json"
    if not secrets_file.exists():
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"encryption_key": secrets.token_hex(32), "nats_password": secrets.token_hex(16)}, f)
    saved = json.loads(secrets_file.read_text())
    c = LocalCluster(
        args.dir,
        nodes=args.nodes,
        lease_ttl=5.0,
        shards=16,
        fixed_ports=True,
        encryption_key=saved["encryption_key"],
        nats_password=saved["nats_password"],
    )
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    print("local cluster is up:")
    for i in range(c.nodes):
        print(f"  node{i + 1}: {c.node_url(i)}   (REST, gRPC h2c, Connect)")
    print(f"  etcd: {','.join(c.etcd_client)}")
    print(f"  nats: {','.join(c.nats_client)}")
    print(f"  logs: {args.dir / 'logs'}")
    print(f"try:    curl -s {c.node_url(0)}/v1/cluster/status")
    print("stop:   make cluster-down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
