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
