"""Checks a normalised response against a step's expectations; returns readable differences."""

from __future__ import annotations

import re
from typing import Any

_MISSING = object()


def lookup(data: Any, path: str) -> Any:
    """Dotted path into nested dicts/lists: `memory.tags.0`, `memories.-1.id`."""
    cur = data
    for part in path.split(".") if path else []:
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                return _MISSING
        elif isinstance(cur, dict):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _is_default(value: Any) -> bool:
    return value is _MISSING or value in (None, "", 0, 0.0, False, [], {})


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return abs(float(actual) - float(expected)) <= 1e-4 * max(1.0, abs(float(expected)))
        except (TypeError, ValueError):
            return False
    if isinstance(expected, int) and isinstance(actual, str) and actual.lstrip("-").isdigit():
        return int(actual) == expected  # int64 travels as a JSON string
    return bool(actual == expected)


def _as_int(value: Any) -> int:
    return int(value)


def check(expect: dict[str, Any], response: Any, error: dict[str, Any] | None) -> list[str]:
    diffs: list[str] = []
    want_error = expect.get("error")
    if want_error:
        if error is None:
            return [f"expected error {want_error}, got a response"]
        if error.get("code") != want_error:
            return [f"expected error {want_error}, got {error.get('code')}: {error.get('message', '')[:200]}"]
        return []
    if error is not None:
        return [f"unexpected error {error.get('code')}: {error.get('message', '')[:300]}"]

    for path, want in expect.get("fields", {}).items():
        got = lookup(response, path)
        if got is _MISSING or not _equal(got, want):
            diffs.append(f"{path}: expected {want!r}, got {'<missing>' if got is _MISSING else repr(got)[:200]}")
    for path in expect.get("present", []):
        if _is_default(lookup(response, path)):
            diffs.append(f"{path}: expected a value, got none")
    for path in expect.get("absent", []):
        if not _is_default(lookup(response, path)):
            diffs.append(f"{path}: expected unset, got {lookup(response, path)!r}"[:300])
    for path, want in expect.get("count", {}).items():
        got = lookup(response, path)
        n = len(got) if isinstance(got, list) else -1
        if n != _as_int(want):
            diffs.append(f"{path}: expected {want} items, got {n}")
    for path, want in expect.get("at_least", {}).items():
        got = lookup(response, path)
        value = len(got) if isinstance(got, list) else (_as_int(got) if got not in (_MISSING, None, "") else 0)
        if value < _as_int(want):
            diffs.append(f"{path}: expected at least {want}, got {value}")
    for path, want in expect.get("contains_id", {}).items():
        ids = _ids(lookup(response, path))
        for one in want if isinstance(want, list) else [want]:
            if one not in ids:
                diffs.append(f"{path}: expected to contain id {one}, got {ids[:20]}")
    for path, want in expect.get("not_contains_id", {}).items():
        ids = _ids(lookup(response, path))
        for one in want if isinstance(want, list) else [want]:
            if one in ids:
                diffs.append(f"{path}: expected not to contain id {one}")
    for path, want in expect.get("first_id", {}).items():
        ids = _ids(lookup(response, path))
        if not ids or ids[0] != want:
            diffs.append(f"{path}: expected first id {want}, got {ids[:5]}")
    for path, spec in expect.get("ordered", {}).items():
        key, direction = spec.split()
        items = lookup(response, path)
        values = [lookup(i, key) for i in items] if isinstance(items, list) else []
        want_sorted = sorted(values, reverse=direction == "desc") if values else values
        if values != want_sorted:
            diffs.append(f"{path}: not ordered by {spec}: {values[:10]}")
    for path, conditions in expect.get("each", {}).items():
        items = lookup(response, path)
        for idx, item in enumerate(items if isinstance(items, list) else []):
            for sub, want in conditions.items():
                got = lookup(item, sub)
                ok = (
                    (isinstance(got, list) and want in got) if isinstance(want, str) and sub.endswith("tags")
                    else _equal(got, want)
                )
                if not ok:
                    diffs.append(f"{path}.{idx}.{sub}: expected {want!r}, got {got!r}"[:300])
    for path, pattern in expect.get("matches", {}).items():
        got = lookup(response, path)
        if not isinstance(got, str) or not re.search(pattern, got):
            diffs.append(f"{path}: {got!r} does not match /{pattern}/"[:300])
    return diffs


def _ids(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            inner = item.get("memory") if isinstance(item.get("memory"), dict) else item
            out.append(str(inner.get("id") or inner.get("agent_id") or ""))
    return out
