"""Conformance cases: loading, schema validation and variable substitution.

A case file (`cases/*.yaml`) holds a list of cases; a case is a named sequence of calls, each
with a request in proto3 JSON, optional credentials and expectations on the response. Names are
paths (`memories/store/basic`), so filters and known-failing lists can use globs.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "schema" / "case.schema.json").read_text())
_VAR = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::([^}]*))?\}")


@dataclass
class Step:
    rpc: str
    request: Any  # dict, or a list of dicts for client streaming
    auth: str = "root"
    expect: dict[str, Any] = field(default_factory=dict)
    save: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0
    timeout_ms: int = 0
    take: int = 0  # server streaming: the first N responses, then the call is cancelled (0: to the end)


@dataclass
class Case:
    name: str
    file: str
    description: str
    steps: list[Step]
    requires: list[str]  # features a target must declare to run it (e.g. "client_streaming")

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]


def load_cases(directory: Path = HERE / "cases") -> list[Case]:
    cases: list[Case] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        jsonschema.validate(doc, SCHEMA)
        for raw in doc["cases"]:
            name = raw["name"]
            if name in seen:
                raise ValueError(f"{path.name}: duplicate case name {name}")
            seen.add(name)
            steps = [
                Step(
                    rpc=s["rpc"], request=s.get("request", {}), auth=s.get("auth", "root"),
                    expect=s.get("expect", {}), save=s.get("save", {}), sleep=float(s.get("sleep", 0)),
                    timeout_ms=int(s.get("timeout_ms", 0)), take=int(s.get("take", 0)),
                )
                for s in raw["steps"]
            ]
            cases.append(Case(name=name, file=path.name, description=raw.get("description", ""), steps=steps,
                              requires=list(raw.get("requires", []))))
    return cases


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace `${name}` (a saved or built-in variable) and `${repeat:x:N}` (x repeated N times);
    expand `{$generate: {count: N, item: ...}}` into N items with `${i}` set to 0..N-1.

    A string that is exactly one variable takes the variable's type (so numbers stay numbers).
    """
    if isinstance(value, dict):
        if set(value) == {"$generate"}:  # {$generate: {count: N, item: {...${i}...}}} → a list of N items
            spec = value["$generate"]
            return [substitute(spec["item"], {**variables, "i": i}) for i in range(int(spec["count"]))]
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> Any:
        name, arg = match.group(1), match.group(2)
        if name == "repeat":
            text, _, count = (arg or "").rpartition(":")
            return text * int(count)
        if name == "random":
            return secrets.token_hex(8)
        if name not in variables:
            raise KeyError(f"unknown variable ${{{name}}}")
        return variables[name]

    whole = _VAR.fullmatch(value)
    if whole:
        return one(whole)
    return _VAR.sub(lambda m: str(one(m)), value)
