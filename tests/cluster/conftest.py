"""A real three-host cluster on loopback for the cluster tests: 3 etcd, 3 NATS JetStream, 3 Engram.

The binaries come from `make cluster-tools` (build/cluster/bin). `make test` builds them and sets
ENGRAM_REQUIRE_CLUSTER=1, so there a missing binary fails; a bare `pytest` skips with the command.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository: tools.cluster.local
sys.path.insert(0, str(HERE))  # cluster_harness

from cluster_harness import running_cluster  # noqa: E402

from tools.cluster.local import LocalCluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("cluster"), nodes=3, shards=8, replication=2)
