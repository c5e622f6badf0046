"""Variables are a contract (docs/terraform.md): every seed workflow parameter
is a typed, described, validated root variable; every variable of every module
is typed and described; required variables come first, then optional ones, each
group alphabetical; collections are non-nullable; secrets are sensitive."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest

from conftest import TERRAFORM

SEED_PARAMETERS = {
    # seed workflow parameter: root variable(s)
    "vmss-runner-name": ["vmss_runner_name"],
    "vmss-scaler-name": ["vmss_scaler_name"],
    "github-repo": ["github_repository", "github_organization"],
    "runner-labels": ["runner_labels"],
    "pool-min-instances": ["pool_min_instances"],
    "pool-max-instances": ["pool_max_instances"],
    "pool-free-target-percentage": ["pool_free_target_percentage"],
}
MODULE_DIRS = [TERRAFORM, *sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir()),
               *sorted(p for p in (TERRAFORM / "examples").iterdir() if p.is_dir())]
SECRET_WORDS = ("credential", "password", "private_key", "token", "secret_value")


def load_variables(module_dir: Path) -> list[tuple[str, dict]]:
    """Variables in file order (variables.tf first), as (name, attributes)."""
    found = []
    for path in sorted(module_dir.glob("*.tf"), key=lambda p: (p.name != "variables.tf", p.name)):
        for block in hcl2.load(path.open(encoding="utf-8")).get("variable", []):
            for name, body in block.items():
                found.append((name.strip('"'), body))
    return found


def _label(p: Path) -> str:
    return str(p.relative_to(TERRAFORM.parent))


@pytest.mark.parametrize("parameter", sorted(SEED_PARAMETERS))
def test_every_seed_parameter_is_a_typed_described_validated_root_variable(parameter: str) -> None:
    root = dict(load_variables(TERRAFORM))
    for name in SEED_PARAMETERS[parameter]:
        assert name in root, f"seed parameter {parameter} needs root variable {name}"
        body = root[name]
        assert body.get("type"), f"{name} needs a type"
        assert len(str(body.get("description", "")).strip('"')) > 20, f"{name} needs a real description"
        assert body.get("validation"), f"{name} needs at least one validation block"
        for rule in body["validation"]:
            message = str(rule.get("error_message", "")).strip('"')
            assert len(message) > 25 and message.endswith("."), f"{name}: validation messages must say what to do"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_label)
def test_every_variable_is_typed_and_described(module_dir: Path) -> None:
    variables = load_variables(module_dir)
    assert variables, f"{module_dir} declares no variables"
    for name, body in variables:
        assert body.get("type"), f"{_label(module_dir)}: variable {name} needs a type"
        assert str(body.get("description", "")).strip('"'), f"{_label(module_dir)}: variable {name} needs a description"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_label)
def test_required_variables_come_first_then_optional_each_alphabetical(module_dir: Path) -> None:
    variables = load_variables(module_dir)
    required = [name for name, body in variables if "default" not in body]
    optional = [name for name, body in variables if "default" in body]
    assert [name for name, _ in variables] == required + optional, f"{_label(module_dir)}: required variables first"
    assert required == sorted(required), f"{_label(module_dir)}: required variables must be alphabetical"
    assert optional == sorted(optional), f"{_label(module_dir)}: optional variables must be alphabetical"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_label)
def test_maps_and_objects_with_defaults_are_not_nullable(module_dir: Path) -> None:
    for name, body in load_variables(module_dir):
        type_ = str(body.get("type", ""))
        if type_.startswith("${map(") or (type_.startswith("${object(") and body.get("default") == {}):
            assert body.get("nullable") is False, f"{_label(module_dir)}: {name} should set nullable = false"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_label)
def test_secret_variables_are_sensitive(module_dir: Path) -> None:
    for name, body in load_variables(module_dir):
        if any(word in name for word in SECRET_WORDS) and "string" in str(body.get("type")) \
                and not name.endswith(("_name", "_content_type", "_expiration_date")):
            assert body.get("sensitive") is True, f"{_label(module_dir)}: {name} holds a secret and must be sensitive"


# Modules without one main resource, and why.
NO_MAIN_RESOURCE = {"identity": "two peer identities (scaler, runners) and their role assignments"}


def test_main_resource_of_each_module_is_named_this() -> None:
    for module_dir in sorted((TERRAFORM / "modules").iterdir()):
        if module_dir.name in NO_MAIN_RESOURCE:
            continue
        names = set()
        for path in module_dir.glob("*.tf"):
            for block in hcl2.load(path.open(encoding="utf-8")).get("resource", []):
                for type_, instances in block.items():
                    names.update(k.strip('"') for k in instances)
        assert "this" in names, f"{module_dir.name}: name the module's main resource `this`"


def test_every_role_assignment_states_scope_and_why() -> None:
    for path in sorted(TERRAFORM.rglob("*.tf")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.startswith('resource "azurerm_role_assignment"'):
                comment = []
                j = i - 1
                while j >= 0 and lines[j].startswith("#"):
                    comment.insert(0, lines[j])
                    j -= 1
                text = " ".join(comment)
                assert "Scope:" in text and "Why:" in text, f"{path}:{i + 1}: comment the scope and the reason"
