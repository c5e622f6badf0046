"""Every `source "azure-arm"` block in packer/ uses only options the azure-arm
builder has at the PINNED plugin version (contracts/packer-azure/azure-arm-<tag>.jsonl,
extracted from packer-plugin-azure's generated HCL2 spec by
scripts/extract-packer-azure-schema.py), none deprecated there, every nested
block's required options set, plus two rules of the builder's Prepare
(builder/azure/arm/config.go at that tag) that `packer validate` enforces:
exactly one image source, and `location` XOR `build_resource_group_name`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from conftest import REPO_ROOT

CONTRACTS = REPO_ROOT / "contracts/packer-azure"
TEMPLATES = sorted((REPO_ROOT / "packer").rglob("*.pkr.hcl"))
SKIP = {"__is_block__", "__comments__", "__inline_comments__"}
IMAGE_SOURCES = {  # config.go: "Specify either a VHD (image_url), Image Reference (image_publisher, ...), Managed Image ... or Shared Image Gallery"
    "platform image": {"image_publisher", "image_offer", "image_sku"},
    "image_url": {"image_url"},
    "managed image": {"custom_managed_image_name", "custom_managed_image_resource_group_name"},
    "shared image gallery": {"shared_image_gallery"},
}
CONDITIONALLY_REQUIRED = set().union(*IMAGE_SOURCES.values())


def _q(value):
    return value[1:-1] if isinstance(value, str) and len(value) > 1 and value[0] == value[-1] == '"' else value


def pinned_version(doc: dict) -> str:
    plugins = doc["packer"][0]["required_plugins"][0]
    azure = next(v for v in plugins.values() if _q(v["source"]) == "github.com/hashicorp/azure")
    match = re.fullmatch(r"=\s*(\d+\.\d+\.\d+)", _q(azure["version"]))
    assert match, f"pin the azure plugin exactly (= X.Y.Z): {azure['version']}"
    return match.group(1)


def load_schema(version: str) -> dict:
    path = CONTRACTS / f"azure-arm-v{version}.jsonl"
    assert path.is_file(), (f"no azure-arm contract for plugin {version}: "
                            f"python3 scripts/extract-packer-azure-schema.py <plugin git dir> v{version}")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next(line["block"] for line in lines[1:] if line["type"] == "azure-arm")


def check_body(body: dict, schema: dict, where: str, top: bool = False) -> list[str]:
    found = []
    attrs, blocks = schema["attributes"], schema["blocks"]
    if "*" in attrs:
        return found
    for key, value in body.items():
        if key in SKIP:
            continue
        is_block = isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
        if is_block:
            if key not in blocks:
                found.append(f"{where}: unknown block {key!r}")
                continue
            if len(value) > 1 and not blocks[key].get("many"):
                found.append(f"{where}: block {key!r} may appear once")
            for item in value:
                found += check_body(item, blocks[key]["block"], f"{where}.{key}")
        elif key not in attrs:
            found.append(f"{where}: unknown option {key!r}" + (" (a block)" if key in blocks else ""))
        elif attrs[key].get("deprecated"):
            found.append(f"{where}: option {key!r} is deprecated at this plugin version")
    for key, info in attrs.items():
        if info.get("required") and key not in body and not (top and key in CONDITIONALLY_REQUIRED):
            found.append(f"{where}: missing required option {key!r}")
    if top:
        present = [name for name, keys in IMAGE_SOURCES.items() if keys & set(body)]
        if len(present) != 1:
            found.append(f"{where}: needs exactly one image source, has {present or 'none'}")
        for name in present:
            missing = IMAGE_SOURCES[name] - set(body)
            if missing:
                found.append(f"{where}: {name} source lacks {sorted(missing)}")
        if ("location" in body) == ("build_resource_group_name" in body):
            found.append(f"{where}: set exactly one of location (Packer creates a resource group) "
                         "and build_resource_group_name (an existing one)")
    return found


def template_problems(text: str, where: str) -> list[str]:
    doc = hcl2.loads(text)
    schema = load_schema(pinned_version(doc))
    found = []
    for block in doc.get("source", []):
        for kind, named in block.items():
            if _q(kind) != "azure-arm":
                continue
            for name, body in named.items():
                found += check_body(body, schema, f"{where}: source.azure-arm.{_q(name)}", top=True)
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_azure_arm_sources_match_the_pinned_plugin(template: Path) -> None:
    found = template_problems(template.read_text(), template.name)
    assert not found, "\n".join(found)


def test_the_check_rejects_invented_deprecated_and_conflicting_options() -> None:
    text = (REPO_ROOT / "packer/minimal/minimal.pkr.hcl").read_text()
    bad = re.sub(r"\n  vm_size +=", "\n  invented_option = true\n  location = \"westeurope\"\n"
                 "  made_up_block {\n    a = 1\n  }\n  vm_size =", text, count=1)
    bad = bad.replace("    gallery_name ", "    replication_regions = [\"x\"]\n    gallery_name ", 1)
    bad = bad.replace("      name = var.location\n", "      replicas = 1\n", 1)
    assert bad.count("invented_option") == 1
    found = "\n".join(template_problems(bad, "bad.pkr.hcl"))
    for expected in ["unknown option 'invented_option'", "unknown block 'made_up_block'",
                     "option 'replication_regions' is deprecated",
                     "set exactly one of location", "missing required option 'name'"]:
        assert expected in found, f"{expected!r} not in:\n{found}"
