"""Every reference in every Terraform module resolves, as `terraform validate`
would require (see tfrefs.py): var./local./module./data./resource references,
module-call arguments against the called module's variables (unknown ones and
missing required ones), and `module.X.out` against X's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TERRAFORM
from tfrefs import load_module, module_dirs, problems


@pytest.mark.parametrize("path", module_dirs(TERRAFORM), ids=lambda p: str(p.relative_to(TERRAFORM.parent)))
def test_every_reference_resolves(path: Path) -> None:
    found = problems(load_module(path))
    assert not found, "\n".join(found)


def test_the_checker_sees_references_in_every_module() -> None:
    for path in module_dirs(TERRAFORM):
        assert load_module(path).references, path


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_checker_reports_each_kind_of_dangling_reference(tmp_path: Path) -> None:
    _write(tmp_path, {
        "main.tf": '''
locals {
  known = var.declared
}

module "child" {
  source  = "./child"
  present = local.known
  invented = 1
}

resource "azurerm_subnet" "many" {
  count = 2
  name  = "s${count.index}"
}

resource "azurerm_subnet" "one" {
  name = "s"
}

output "instances" {
  value = [azurerm_subnet.many.id, azurerm_subnet.one[0].id, azurerm_subnet.many[1].id, length(azurerm_subnet.many)]
}

resource "azurerm_resource_group" "this" {
  name     = "${local.missing}-${var.undeclared}"
  location = data.azurerm_client_config.nowhere.tenant_id
  tags     = { a = azurerm_storage_account.absent.id, b = module.child.no_such_output, c = module.ghost.x }
}

output "ok" {
  description = "mentions var.not_a_reference and local.nor_this in text"
  value       = [azurerm_resource_group.this.id, module.child.out]
}

variable "declared" {
  type = string
}
''',
        "child/main.tf": '''
variable "present" {
  type = string
}

variable "required_too" {
  type = string
}

variable "optional" {
  type    = string
  default = null
}

output "out" {
  value = var.present
}
''',
    })
    found = "\n".join(problems(load_module(tmp_path)))
    for expected in [
        "undeclared local value 'local.missing'",
        "undeclared input variable 'var.undeclared'",
        "undeclared data source 'data.azurerm_client_config.nowhere.tenant_id'",
        "undeclared resource 'azurerm_storage_account.absent.id'",
        "has no output 'no_such_output'",
        "undeclared module 'module.ghost.x'",
        "Unsupported argument 'invented'",
        "Missing required argument 'required_too'",
        "Missing resource instance key: azurerm_subnet.many has count or for_each ('azurerm_subnet.many.id')",
        "Unexpected resource instance key: azurerm_subnet.one has neither count nor for_each ('azurerm_subnet.one[0].id')",
    ]:
        assert expected in found, f"{expected!r} not in:\n{found}"
    assert "not_a_reference" not in found and "nor_this" not in found
    assert "'optional'" not in found and "module.child.out" not in found
    assert "azurerm_subnet.many[1]" not in found and "length(" not in found


# ---------------------------------------------------------------- terraform test files

import hcl2  # noqa: E402

from tfrefs import SKIP_KEYS, _references_in, _unquote  # noqa: E402

TEST_FILES = sorted((TERRAFORM / "tests").glob("*.tftest.hcl"))


def tftest_problems(path: Path) -> list[str]:
    """What `terraform test` would reject before planning: each run's module source
    exists, its variables are the module's (or the file's), and its asserts and
    expect_failures name variables, outputs and resources (with instance keys) of
    that module."""
    doc = hcl2.loads(path.read_text(encoding="utf-8"))
    file_vars = {k for block in doc.get("variables", []) for k in block if k not in SKIP_KEYS}
    found = []
    for block in doc.get("run", []):
        for name, run in block.items():
            run_name = _unquote(name)
            source = _unquote(run["module"][0]["source"]) if "module" in run else "."
            module_dir = (TERRAFORM / source).resolve()
            if not module_dir.is_dir():
                found.append(f"{path.name}: run {run_name}: module {source} does not exist")
                continue
            module = load_module(module_dir)
            run_vars = {k for v in run.get("variables", []) for k in v if k not in SKIP_KEYS}
            for var in sorted(run_vars - set(module.variables)):
                found.append(f"{path.name}: run {run_name}: {source} declares no variable {var!r}")
            given = run_vars | (file_vars & set(module.variables))
            for var in sorted(v for v, has_default in module.variables.items() if not has_default and v not in given):
                found.append(f"{path.name}: run {run_name}: required variable {var!r} of {source} is not set")
            refs = list(_references_in(run.get("assert", []), f"{path.name}: run {run_name}"))
            refs += list(_references_in(run.get("expect_failures", []), f"{path.name}: run {run_name}: expect_failures"))
            refs += list(_references_in(run.get("variables", []), f"{path.name}: run {run_name}: variables"))
            for ref in refs:
                parts = ref.parts
                if parts[0] == "var" and len(parts) >= 2 and parts[1] not in set(module.variables) | file_vars:
                    found.append(f"{ref.where}: no variable {parts[1]!r}")
                elif parts[0] == "output" and len(parts) >= 2 and parts[1] not in module.outputs:
                    found.append(f"{ref.where}: {source} has no output {parts[1]!r}")
                elif parts[0].startswith("azurerm_") and len(parts) >= 2:
                    key = (parts[0], parts[1])
                    if key not in module.resources:
                        found.append(f"{ref.where}: {source} has no resource {parts[0]}.{parts[1]}")
                    elif key in module.repeated and len(parts) >= 3 and not ref.indexed:
                        found.append(f"{ref.where}: Missing resource instance key ({ref.text})")
                    elif key not in module.repeated and ref.indexed:
                        found.append(f"{ref.where}: Unexpected resource instance key ({ref.text})")
    return found


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_terraform_test_files_reference_what_their_modules_have(path: Path) -> None:
    found = tftest_problems(path)
    assert not found, "\n".join(found)
