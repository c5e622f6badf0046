#!/usr/bin/env python3
"""Extract the azure-arm builder's HCL options from packer-plugin-azure at one
tag into contracts/packer-azure/azure-arm-<tag>.jsonl.

    python3 scripts/extract-packer-azure-schema.py PLUGIN_GIT_DIR v2.2.1

PLUGIN_GIT_DIR is a clone (or bare mirror) of hashicorp/packer-plugin-azure. Read
with `git show`:
  builder/azure/arm/config.hcl2spec.go   the generated HCL2 spec: every attribute
      (`&hcldec.AttrSpec`) and nested block (`BlockSpec` one, `BlockListSpec` many)
      of each `Flat*` struct, and the `required:"true"` struct tags
  builder/azure/arm/config.go            the doc comments: a backticked option
      named in a sentence that calls it deprecated is marked deprecated
      (e.g. "supersedes `replication_regions` which is now considered deprecated")

`required` is recorded as the plugin tags it; at the top level those tags are
conditional (image_publisher/offer/sku, image_url and custom_managed_image_* are
alternative image sources), which tests/static/test_packer_schema.py accounts for.
JSON Lines (provenance first, then one line per spec) rather than `.json`, which
tests/contract's integrity test reserves for copied API descriptions.
Not run in CI; the output is committed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = "builder/azure/arm/config.hcl2spec.go"
CONFIG_FILE = "builder/azure/arm/config.go"

_STRUCT = re.compile(r"^type (Flat\w+) struct \{\n(.*?)^\}", re.M | re.S)
_FIELD = re.compile(r'`[^`]*\bhcl:"([\w-]+)"[^`]*`')
_SPEC_FUNC = re.compile(r"^func \(\*(Flat\w+)\) HCL2Spec\(\) map\[string\]hcldec\.Spec \{\n(.*?)^\}", re.M | re.S)
_ENTRY = re.compile(r'^\s*"([\w-]+)":\s*&hcldec\.(AttrSpec|BlockSpec|BlockListSpec)\{(.*)\},?\s*$', re.M)
_NESTED = re.compile(r"\(\*(Flat\w+)\)\(nil\)\.HCL2Spec\(\)")


def git_show(git_dir: Path, tag: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(git_dir), "show", f"{tag}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def deprecated_names(config_go: str) -> set[str]:
    names = set()
    for sentence in re.split(r"(?<=[.!?])\s", " ".join(
            line.strip().lstrip("/").strip() for line in config_go.splitlines() if line.strip().startswith("//"))):
        if "deprecated" in sentence.lower():
            for name in re.findall(r"`([a-z_]+)`\s+(?:which\s+)?(?:is|has been|are)\s+(?:now\s+)?(?:considered\s+)?deprecated",
                                   sentence):
                names.add(name)
    return names


def extract(git_dir: Path, tag: str) -> dict:
    spec_go = git_show(git_dir, tag, SPEC_FILE)
    config_go = git_show(git_dir, tag, CONFIG_FILE)
    required = {}
    for name, body in _STRUCT.findall(spec_go):
        required[name] = {m.group(1) for m in _FIELD.finditer(body) if 'required:"true"' in m.group(0)}
    specs = {}
    for name, body in _SPEC_FUNC.findall(spec_go):
        attrs, blocks = {}, {}
        for key, kind, inner in _ENTRY.findall(body):
            info = {"required": True} if key in required.get(name, set()) else {}
            if kind == "AttrSpec":
                attrs[key] = info
            else:
                nested = _NESTED.search(inner)
                info["nested"] = nested.group(1) if nested else None
                info["many"] = kind == "BlockListSpec"
                blocks[key] = info
        specs[name] = {"attributes": attrs, "blocks": blocks}
    deprecated = deprecated_names(config_go)
    for spec in specs.values():
        for key, info in spec["attributes"].items():
            if key in deprecated:
                info["deprecated"] = True

    def tree(name: str, seen: tuple[str, ...] = ()) -> dict:
        spec = specs[name]
        out = {"attributes": spec["attributes"], "blocks": {}}
        for key, info in spec["blocks"].items():
            nested = info.pop("nested", None)
            entry = dict(info)
            entry["block"] = tree(nested, seen + (name,)) if nested and nested not in seen else {"attributes": {"*": {}}, "blocks": {}}
            out["blocks"][key] = entry
        return out

    commit = subprocess.run(["git", "-C", str(git_dir), "rev-list", "-n1", tag], check=True,
                            capture_output=True, text=True).stdout.strip()
    return {
        "provenance": {
            "repository": "hashicorp/packer-plugin-azure",
            "tag": tag,
            "commit": commit,
            "files": [SPEC_FILE, CONFIG_FILE],
            "license": "MPL-2.0 (option names and flags extracted; no code copied)",
            "generator": "scripts/extract-packer-azure-schema.py",
            "deprecated_from_comments": sorted(deprecated),
        },
        "source": {"azure-arm": tree("FlatConfig")},
    }


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    result = extract(Path(sys.argv[1]), sys.argv[2])
    dest = REPO_ROOT / "contracts/packer-azure" / f"azure-arm-{sys.argv[2]}.jsonl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"provenance": result["provenance"]}, sort_keys=True)]
    for name, block in result["source"].items():
        lines.append(json.dumps({"kind": "source", "type": name, "block": block}, sort_keys=True))
    dest.write_text("\n".join(lines) + "\n")
    top = result["source"]["azure-arm"]
    print(f"wrote {dest.relative_to(REPO_ROOT)}: {len(top['attributes'])} options, {len(top['blocks'])} blocks; "
          f"deprecated: {result['provenance']['deprecated_from_comments']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
