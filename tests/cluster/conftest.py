"""A real three-host cluster on loopback for the cluster tests: 3 etcd, 3 NATS JetStream, 3 Engram.

The binaries come from `make cluster-tools` (build/cluster/bin). `make test` builds them and sets
ENGRAM_REQUIRE_CLUSTER=1, so there a missing binary fails; a bare `pytest` skips with the command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository: tools.cluster.local
sys.path.insert(0, str(HERE))  # cluster_harness

from cluster_harness import ROOT_KEY  # noqa: E402

from tools.cluster.local import BIN, LocalCluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if not (BIN / "etcd").exists() or not (BIN / "nats-server").exists():
        if os.environ.get("ENGRAM_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"{BIN}/etcd or nats-server is missing: `make cluster-tools` builds them")
        pytest.skip("cluster binaries missing: run `make cluster-tools`")
    c = LocalCluster(
        tmp_path_factory.mktemp("cluster"), nodes=3, shards=8, replication=2, lease_ttl=2.0, api_key=ROOT_KEY
    )
    try:
        c.start(timeout=90)
        yield c
    finally:
        c.stop()
