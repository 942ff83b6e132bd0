"""The conformance runner.

    .venv/bin/python -m conformance                         # every case, every SDK and transport
    .venv/bin/python -m conformance --sdk python --case 'recall/*'
    .venv/bin/python -m conformance --known-failing FILE    # extra allowed failures (globs)

Starts the reference server on a free port with a fresh data dir, runs every case through every
target (raw REST plus each SDK × transport in clients.yaml) in parallel, prints one
`FAILED: <sdk>/<transport>/<case>: <diff>` line per failure, writes docs/conformance.md and ends
with `N passed, N failed`. A known-failing case that passes is itself a failure, so the lists
cannot go stale. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import fnmatch
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .api import REPO, normalise
from .cases import Case, load_cases, substitute
from .expect import check, lookup
from .report import write_report
from .targets import ClientSpec, RawRestTarget, ShimTarget, Target, client_specs, rpc

sys.path.insert(0, str(REPO))
from bench.common import ROOT_KEY, ServerProcess  # noqa: E402 - one server launcher for all harnesses
from tools.cluster.local import LocalCluster  # noqa: E402

WRONG_KEY = "engram_wrong_" + "0" * 32


def run_case(target: Target, case: Case, agent_prefix: str) -> list[str]:
    """Runs one case; returns differences (empty when it passed)."""
    variables: dict[str, Any] = {
        "agent": f"{agent_prefix}-a", "agent2": f"{agent_prefix}-b", "root_key": ROOT_KEY,
    }
    for index, step in enumerate(case.steps, start=1):
        if step.sleep:
            time.sleep(step.sleep)
        method = rpc(step.rpc)
        request = substitute(step.request, variables)
        auth = substitute(step.auth, variables) if step.auth.startswith("${") else step.auth
        api_key = {"root": ROOT_KEY, "none": None, "wrong": WRONG_KEY}.get(auth, auth)
        try:
            outcome = target.call(method, request, api_key, step.timeout_ms, step.take)
        except Exception as exc:  # noqa: BLE001 - a broken target is a failure, not a crash
            return [f"step {index} {step.rpc}: {type(exc).__name__}: {exc}"]
        response = outcome.response
        if outcome.error is None and response is not None:
            try:
                response = normalise(method.output_type, response)
            except Exception as exc:  # noqa: BLE001
                return [f"step {index} {step.rpc}: response is not a valid {method.output_type}: {exc}"]
        diffs = check(substitute(step.expect, variables), response, outcome.error)
        if diffs:
            return [f"step {index} {step.rpc}: {d}" for d in diffs]
        for var, path in step.save.items():
            value = lookup(response, path)
            if value is None or value == "":
                return [f"step {index} {step.rpc}: nothing at {path} to save as ${{{var}}}"]
            variables[var] = value
    return []


def read_known_failing(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def build_targets(specs: list[ClientSpec], urls: list[str], sdk_filter: list[str] | None) -> tuple[list[Target], dict[str, ClientSpec]]:
    """One target per SDK and transport; against a cluster, each on the next node in turn."""
    targets: list[Target] = []
    owners: dict[str, ClientSpec] = {}

    def base_url() -> str:
        return urls[len(targets) % len(urls)]

    if not sdk_filter or "rest-raw" in sdk_filter:
        targets.append(RawRestTarget(base_url()))
    for spec in specs:
        if sdk_filter and spec.sdk not in sdk_filter:
            continue
        if spec.build:
            subprocess.run(spec.build, check=True, cwd=REPO)
        for transport in spec.transports:
            target = ShimTarget(spec.sdk, transport, spec.command, base_url())
            targets.append(target)
            owners[target.name] = spec
    return targets, owners


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdk", action="append", help="only this SDK (repeatable): rest-raw, python, typescript, go, rust")
    parser.add_argument("--case", action="append", help="only cases matching this glob (repeatable)")
    parser.add_argument("--known-failing", type=Path, help="extra file of case globs allowed to fail")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/conformance.md")
    parser.add_argument("--cluster", action="store_true",
                        help="run against a local three-node cluster (tools/cluster/local.py), the targets spread over its nodes; "
                             "cases that require single_node are skipped")
    parser.add_argument("--clients", type=Path, default=None,
                        help="the shims to drive (default conformance/clients.yaml); another file never rewrites the report")
    args = parser.parse_args()

    cases = [c for c in load_cases() if not args.case or any(fnmatch.fnmatch(c.name, g) for g in args.case)]
    extra_known = read_known_failing(args.known_failing)
    tmp = Path(tempfile.mkdtemp(prefix="engram-conformance-"))
    server: ServerProcess | LocalCluster
    if args.cluster:
        server = LocalCluster(tmp / "cluster", nodes=3, shards=8, replication=2, lease_ttl=2.0, api_key=ROOT_KEY)
        server.start(timeout=120)
        urls = [server.node_url(i) for i in range(server.nodes)]
    else:
        server = ServerProcess(data_dir=tmp / "data", encryption_key=secrets.token_hex(32))
        server.start()
        urls = [server.base_url]
    results: dict[tuple[str, str], bool] = {}
    failures: list[str] = []
    try:
        specs = client_specs(args.clients) if args.clients else client_specs()
        targets, owners = build_targets(specs, urls, args.sdk)

        def run_target(target: Target) -> list[tuple[str, list[str]]]:
            spec = owners.get(target.name)
            transport = target.name.split("/", 1)[1]
            features = spec.features_for(transport) if spec else {"server_streaming", "client_streaming", "scoped_keys"}
            features = features | ({"cluster"} if args.cluster else {"single_node"})
            out = []
            for n, case in enumerate(cases):
                if not set(case.requires) <= features:
                    continue
                prefix = f"cf-{target.name.replace('/', '-')}-{n}-{secrets.token_hex(3)}"
                out.append((case.name, run_case(target, case, prefix)))
            return out

        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            per_target = dict(zip([t.name for t in targets], pool.map(run_target, targets), strict=True))
        for target in targets:
            target.close()
    finally:
        server.stop()

    passed = failed = 0
    for target_name, outcomes in per_target.items():
        spec = owners.get(target_name)
        known = read_known_failing(spec.known_failing if spec else None) + extra_known
        for case_name, diffs in outcomes:
            full = f"{target_name}/{case_name}"
            allowed = any(fnmatch.fnmatch(full, g) or fnmatch.fnmatch(case_name, g) for g in known)
            ok = not diffs
            results[(target_name, case_name)] = ok
            if ok and allowed:
                failed += 1
                failures.append(f"FAILED: {full}: listed as known failing but passed; remove it from the list")
            elif not ok and not allowed:
                failed += 1
                failures.append(f"FAILED: {full}: {diffs[0]}" + (f" (+{len(diffs) - 1} more)" if len(diffs) > 1 else ""))
            else:
                passed += 1
    for line in failures:
        print(line)
    if not args.no_report and not args.case and not args.sdk and not args.clients:
        name = "conformance-cluster.md" if args.cluster else "conformance.md"
        write_report(results, cases, REPO / "docs" / name, cluster=args.cluster)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
