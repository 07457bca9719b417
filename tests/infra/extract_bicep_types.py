"""Refresh tests/infra/bicep_types/: the Bicep types of the resources infra/ declares.

The type check of the templates (tests/infra/bicep_types.py) reads the types that the
Bicep compiler itself uses, generated from Azure's REST specs into the public
repository Azure/bicep-types-az as `generated/<provider>/<namespace>/<api-version>/types.json`.
Those files are large (Microsoft.Web's is 600 kB), so only an extract is kept here:
for each upstream file, the resource types infra/ uses (type@api-version, `existing`
ones included) and every type reachable from their bodies, renumbered, without the
descriptions. Each extract records the upstream path, commit and blob id.

Refresh after changing a resource's type or api-version (the tests say when):

    git clone --filter=blob:none https://github.com/Azure/bicep-types-az /tmp/bicep-types-az
    .venv/bin/python -m tests.infra.extract_bicep_types /tmp/bicep-types-az

The first argument is a clone (a bare one is fine); --rev picks the commit (default
HEAD). Nothing here runs during the tests: they read the committed extracts only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.bicep_model import all_resources
from tests.infra.bicep_types import TYPES_DIR, extract_file_name

# Resource types kept for the regression tests, although no template uses them now:
# the registry API version the templates used before anonymousPullEnabled existed
# (tests/infra/test_bicep_types.py shows that the check refuses the old template).
FIXTURE_TYPES = ("Microsoft.ContainerRegistry/registries@2023-07-01",)

UPSTREAM = "Azure/bicep-types-az"


def used_types() -> set[str]:
    return {f"{r.type}@{r.api_version}" for r in all_resources()} | set(FIXTURE_TYPES)


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return result.stdout


def _candidates(repo: Path, rev: str, type_name: str) -> list[str]:
    """Upstream files that may hold `Namespace/type@version` (a namespace can span several)."""
    namespace = type_name.split("/", 1)[0].lower()
    version = type_name.rsplit("@", 1)[1]
    suffix = f"/{namespace}/{version}/types.json"
    listing = _git(repo, "ls-tree", "-r", "--name-only", rev, "generated/")
    return sorted(path for path in listing.splitlines() if path.lower().endswith(suffix))


def _ref(ref: dict[str, str]) -> int:
    return int(ref["$ref"].removeprefix("#/"))


def _children(node: dict[str, Any]) -> list[int]:
    kind = node["$type"]
    if kind == "ResourceType":
        return [_ref(node["body"])]
    if kind == "ObjectType":
        refs = [_ref(p["type"]) for p in node.get("properties", {}).values()]
        if "additionalProperties" in node:
            refs.append(_ref(node["additionalProperties"]))
        return refs
    if kind == "DiscriminatedObjectType":
        refs = [_ref(p["type"]) for p in node.get("baseProperties", {}).values()]
        return refs + [_ref(e) for e in node["elements"].values()]
    if kind == "UnionType":
        return [_ref(e) for e in node["elements"]]
    if kind == "ArrayType":
        return [_ref(node["itemType"])]
    return []


def _strip(node: dict[str, Any], renumber: dict[int, int]) -> dict[str, Any]:
    """A copy without descriptions, with references renumbered."""

    def ref(value: dict[str, str]) -> dict[str, str]:
        return {"$ref": f"#/{renumber[_ref(value)]}"}

    out = {k: v for k, v in node.items() if k != "description"}
    kind = node["$type"]
    if kind == "ResourceType":
        out = {k: v for k, v in out.items() if k != "functions"}
        out["body"] = ref(node["body"])
    elif kind in ("ObjectType", "DiscriminatedObjectType"):
        key = "properties" if kind == "ObjectType" else "baseProperties"
        out[key] = {
            name: {"type": ref(prop["type"]), "flags": prop["flags"]}
            for name, prop in node.get(key, {}).items()
        }
        if "additionalProperties" in node:
            out["additionalProperties"] = ref(node["additionalProperties"])
        if kind == "DiscriminatedObjectType":
            out["elements"] = {name: ref(e) for name, e in node["elements"].items()}
    elif kind == "UnionType":
        out["elements"] = [ref(e) for e in node["elements"]]
    elif kind == "ArrayType":
        out["itemType"] = ref(node["itemType"])
    return out


def extract(types: list[dict[str, Any]], wanted: list[str]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The resource types named in `wanted` and what they reach, renumbered from 0."""
    roots = {}
    for index, node in enumerate(types):
        if node["$type"] == "ResourceType" and node["name"].lower() in {w.lower() for w in wanted}:
            roots[node["name"]] = index
    missing = {w.lower() for w in wanted} - {name.lower() for name in roots}
    assert not missing, f"not in this file: {sorted(missing)}"
    order: list[int] = []
    seen: set[int] = set()
    stack = list(roots.values())[::-1]
    while stack:
        index = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        order.append(index)
        stack.extend(reversed(_children(types[index])))
    renumber = {old: new for new, old in enumerate(order)}
    return (
        {name: renumber[index] for name, index in sorted(roots.items())},
        [_strip(types[old], renumber) for old in order],
    )


def write_extract(path: Path, source: dict[str, str], resources: dict[str, int], types: list[Any]) -> None:
    """One type per line, so that a refresh diffs readably."""
    lines = [
        "{",
        f'"source": {json.dumps(source, sort_keys=True)},',
        f'"resources": {json.dumps(resources, sort_keys=True)},',
        '"types": [',
        ",\n".join(json.dumps(t, sort_keys=True, separators=(",", ":")) for t in types),
        "]",
        "}",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help=f"a clone of {UPSTREAM} (bare or not)")
    parser.add_argument("--rev", default="HEAD", help="commit to read (default HEAD)")
    args = parser.parse_args(argv)
    commit = _git(args.repo, "rev-parse", f"{args.rev}^{{commit}}").strip()

    by_file: dict[str, list[str]] = {}
    for type_name in sorted(used_types(), key=str.lower):
        found = []
        for path in _candidates(args.repo, commit, type_name):
            text = _git(args.repo, "show", f"{commit}:{path}")
            names = {n["name"].lower() for n in json.loads(text) if n["$type"] == "ResourceType"}
            if type_name.lower() in names:
                found.append(path)
        if not found:
            print(f"{type_name}: no types.json in {UPSTREAM}@{commit} declares it", file=sys.stderr)
            return 1
        by_file.setdefault(found[0], []).append(type_name)

    TYPES_DIR.mkdir(exist_ok=True)
    for old in TYPES_DIR.glob("*.json"):
        old.unlink()
    for path, wanted in sorted(by_file.items()):
        types = json.loads(_git(args.repo, "show", f"{commit}:{path}"))
        resources, kept = extract(types, wanted)
        source = {
            "repository": UPSTREAM,
            "commit": commit,
            "path": path,
            "blob": _git(args.repo, "rev-parse", f"{commit}:{path}").strip(),
        }
        target = TYPES_DIR / extract_file_name(path)
        write_extract(target, source, resources, kept)
        print(f"{target.relative_to(TYPES_DIR.parent)}: {len(resources)} resource types, {len(kept)} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
