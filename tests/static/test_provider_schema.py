"""Every azurerm resource and data source block under terraform/ matches the
provider's schema at the LOWEST version `required_providers` allows
(contracts/terraform-azurerm/schema-<tag>.jsonl, extracted from the provider's Go
source by scripts/extract-azurerm-schema.py): each argument and nested block
exists, none is deprecated, every required one is set (statically or through a
`dynamic` block), and every attribute read as `azurerm_x.name.attr` exists and
is not deprecated. This is the part of `terraform validate` that needs the
provider, without downloading it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from conftest import REPO_ROOT, TERRAFORM
from tfrefs import SKIP_KEYS, load_module, module_dirs

CONTRACTS = REPO_ROOT / "contracts/terraform-azurerm"
RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
ALWAYS_READABLE = {"id"}


def _lower_bound() -> str:
    bounds = set()
    for versions in TERRAFORM.rglob("versions.tf"):
        if ".terraform" in versions.parts:
            continue
        for block in hcl2.loads(versions.read_text()).get("terraform", []):
            for providers in block.get("required_providers", []):
                constraint = providers["azurerm"]["version"]
                bounds.add(re.search(r">=\s*([\d.]+)", constraint).group(1))
    assert len(bounds) == 1, f"every versions.tf must allow the same lowest azurerm: {bounds}"
    return bounds.pop()


def load_schema() -> dict:
    bound = _lower_bound()
    parts = bound.split(".") + ["0"] * (3 - len(bound.split(".")))
    path = CONTRACTS / f"schema-v{'.'.join(parts[:3])}.jsonl"
    assert path.is_file(), (f"no schema contract for azurerm {bound} (the lowest version versions.tf allows): "
                            f"python3 scripts/extract-azurerm-schema.py <provider git dir> v{'.'.join(parts[:3])}")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    schema: dict = {"provenance": lines[0]["provenance"], "resource": {}, "data": {}}
    for line in lines[1:]:
        schema[line["kind"]][line["type"]] = line["block"]
    return schema


def check_body(body: dict, schema: dict, where: str) -> list[str]:
    """Problems of one block body against one schema block."""
    found = []
    attrs, blocks = schema["attributes"], schema["blocks"]
    if "*" in attrs:  # the extractor could not read this schema: accept anything
        return found
    present_blocks: set[str] = set()
    for key, value in body.items():
        if key in SKIP_KEYS or key in RESOURCE_META:
            continue
        if key == "dynamic":
            for dyn in value:
                for label, dyn_body in dyn.items():
                    name = label.strip('"')
                    present_blocks.add(name)
                    nested = (blocks.get(name) or attrs.get(name) or {}).get("block")
                    if nested is None:
                        found.append(f"{where}: Unsupported block type {name!r} (dynamic)")
                        continue
                    for content in dyn_body.get("content", []):
                        found += check_body(content, nested, f"{where}.{name}")
            continue
        is_block = isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
        if is_block:
            present_blocks.add(key)
            if key not in blocks and "block" in attrs.get(key, {}):
                # An attribute in ConfigModeAttr (e.g. security_rule) also takes block syntax.
                for item in value:
                    found += check_body(item, attrs[key]["block"], f"{where}.{key}")
                continue
            if key not in blocks:
                hint = " (it is an argument: write `key = ...`)" if key in attrs else ""
                found.append(f"{where}: Unsupported block type {key!r}{hint}")
                continue
            if blocks[key].get("deprecated"):
                found.append(f"{where}: block {key!r} is deprecated at this provider version")
            for item in value:
                found += check_body(item, blocks[key]["block"], f"{where}.{key}")
        else:
            if key not in attrs:
                hint = " (it is a block: write `key { ... }`)" if key in blocks else ""
                found.append(f"{where}: Unsupported argument {key!r}{hint}")
                continue
            info = attrs[key]
            if info.get("computed") and not (info.get("optional") or info.get("required")):
                found.append(f"{where}: {key!r} is read-only (computed)")
            if info.get("deprecated"):
                found.append(f"{where}: argument {key!r} is deprecated at this provider version")
    for name, info in attrs.items():
        if info.get("required") and name not in body:
            found.append(f"{where}: Missing required argument {name!r}")
    for name, info in blocks.items():
        if (info.get("required") or info.get("min_items", 0) >= 1) and name not in present_blocks:
            found.append(f"{where}: Missing required block {name!r}")
    return found


def module_problems(path: Path, schema: dict) -> list[str]:
    module = load_module(path)
    found = []
    for kind, bodies in (("resource", module.resource_bodies), ("data", module.data_bodies)):
        for (rtype, name), body in sorted(bodies.items()):
            if not rtype.startswith("azurerm_"):
                continue
            rschema = schema[kind].get(rtype)
            if rschema is None:
                found.append(f"{kind} {rtype}.{name}: {rtype} is not in the schema contract "
                             "(rerun scripts/extract-azurerm-schema.py)")
                continue
            found += check_body(body, rschema, f"{kind} {rtype}.{name}")
    for ref in module.references:
        parts = ref.parts
        if parts[0] == "data" and len(parts) >= 4 and parts[1].startswith("azurerm_"):
            kind, rtype, attr = "data", parts[1], parts[3]
        elif parts[0].startswith("azurerm_") and len(parts) >= 3:
            kind, rtype, attr = "resource", parts[0], parts[2]
        else:
            continue
        rschema = schema[kind].get(rtype)
        if rschema is None or "*" in rschema["attributes"] or attr in ALWAYS_READABLE:
            continue
        info = rschema["attributes"].get(attr) or rschema["blocks"].get(attr)
        if info is None:
            found.append(f"{ref.where}: Unsupported attribute {attr!r} of {rtype} ({ref.text})")
        elif info.get("deprecated"):
            found.append(f"{ref.where}: {rtype}.{attr} is deprecated at this provider version ({ref.text})")
    return found


@pytest.mark.parametrize("path", module_dirs(TERRAFORM), ids=lambda p: str(p.relative_to(TERRAFORM.parent)))
def test_resources_match_the_provider_schema(path: Path) -> None:
    found = module_problems(path, load_schema())
    assert not found, "\n".join(found)


def test_the_contract_covers_every_type_used_and_was_fully_read() -> None:
    schema = load_schema()
    assert schema["provenance"]["unresolved"] == [], "the extractor left entries unresolved"
    for path in module_dirs(TERRAFORM):
        module = load_module(path)
        for rtype, _ in module.resources:
            if rtype.startswith("azurerm_"):
                assert rtype in schema["resource"], rtype
        for rtype, _ in module.data:
            if rtype.startswith("azurerm_"):
                assert rtype in schema["data"], rtype


def test_the_check_rejects_invented_deprecated_and_missing_arguments(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('''
resource "azurerm_storage_queue" "this" {
  storage_account_id = "x"
  invented_argument  = true

  made_up_block {
    a = 1
  }
}

resource "azurerm_linux_virtual_machine_scale_set" "this" {
  name                = "n"
  location            = "l"
  resource_group_name = "rg"
  sku                 = "Standard_D2s_v5"
  admin_username      = "azureuser"

  network_interface {
    name = "nic"
  }
}

output "deprecated_read" {
  value = azurerm_storage_queue.this.resource_manager_id
}

output "unknown_read" {
  value = azurerm_storage_queue.this.no_such_attribute
}
''')
    found = "\n".join(module_problems(tmp_path, load_schema()))
    for expected in [
        "resource azurerm_storage_queue.this: Unsupported argument 'invented_argument'",
        "resource azurerm_storage_queue.this: Unsupported block type 'made_up_block'",
        "resource azurerm_storage_queue.this: Missing required argument 'name'",
        "resource azurerm_linux_virtual_machine_scale_set.this: Missing required block 'os_disk'",
        "resource azurerm_linux_virtual_machine_scale_set.this.network_interface: Missing required block 'ip_configuration'",
        "azurerm_storage_queue.resource_manager_id is deprecated",
        "Unsupported attribute 'no_such_attribute' of azurerm_storage_queue",
    ]:
        assert expected in found, f"{expected!r} not in:\n{found}"


def test_the_generators_compile_and_document_their_use(tmp_path: Path) -> None:
    """The extractors are not run here (they need the upstream repositories), but they
    must stay valid Python and say how to run them."""
    import py_compile

    for script in ("scripts/extract-azurerm-schema.py", "scripts/extract-packer-azure-schema.py"):
        py_compile.compile(str(REPO_ROOT / script), cfile=str(tmp_path / "out.pyc"), doraise=True)
        assert "python3 " + script in (REPO_ROOT / script).read_text(), script
