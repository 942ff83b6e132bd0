"""Fail when two REST routes of the OpenAPI document could match the same request.

Two operations conflict when they use the same HTTP method and a concrete URL path could match
both templates: the same number of segments, and at every position equal literals or a variable
on either side (``GET /v1/memories/{id}`` against ``GET /v1/memories/recall``). A router then
depends on precedence rules that differ between the server, proxies and generated clients, so
the API must not rely on them. (temporalio/api runs the same check on its OpenAPI output.)

Usage: ``python -m tools.check_path_conflicts docs/openapi.json``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_VARIABLE = re.compile(r"^\{[^}]+\}$")


def segments(path: str) -> list[str]:
    """Path segments; a trailing ``:verb`` stays part of the last literal (``memories:export``)."""
    return [s for s in path.split("/") if s]


def _is_variable(segment: str) -> bool:
    return bool(_VARIABLE.match(segment))


def could_match_same(a: str, b: str) -> bool:
    sa, sb = segments(a), segments(b)
    if len(sa) != len(sb):
        return False
    return all(x == y or _is_variable(x) or _is_variable(y) for x, y in zip(sa, sb, strict=True))


def conflicts(document: dict[str, object]) -> list[str]:
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return ["the document has no paths"]
    routes: dict[str, list[str]] = {}
    for path, item in paths.items():
        if isinstance(item, dict):
            for method in item:
                if method in HTTP_METHODS:
                    routes.setdefault(method, []).append(path)
    found = []
    for method, templates in sorted(routes.items()):
        for a, b in itertools.combinations(sorted(templates), 2):
            if could_match_same(a, b):
                found.append(f"{method.upper()} {a}  <->  {method.upper()} {b}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    document = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    found = conflicts(document)
    for line in found:
        print(f"path conflict: {line}")
    if found:
        return 1
    count = sum(1 for item in document["paths"].values() for m in item if m in HTTP_METHODS)
    print(f"path conflicts: none among {count} REST operations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
