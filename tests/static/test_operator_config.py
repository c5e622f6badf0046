"""The operator config that Terraform renders must satisfy the operator's own
JSON Schema (schema/operator-config.schema.json, generated from the Rust types).

Each example is followed through the real chain, evaluating the HCL itself:
example `module "github_runners"` arguments -> root variables (defaults and
optional() attributes applied) -> root `module "scaler"` arguments -> scaler
variables -> the scaler's templatefile() call -> operator-config.json.tftpl.
Only values Azure computes at apply time (ids, URLs) are stand-ins."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import REPO_ROOT, TERRAFORM
from hcleval import (Evaluator, LocalValues, attribute, attributes, block_body, blocks, parse_file, render_template,
                     resolve_inputs, validation_failures)

SCHEMA_PATH = Path(os.environ.get("OPERATOR_CONFIG_SCHEMA", REPO_ROOT / "schema" / "operator-config.schema.json"))
SCALER = TERRAFORM / "modules" / "scaler"
STORAGE = TERRAFORM / "modules" / "storage"

# Stand-ins for what Azure computes during apply.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
VMSS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"
MODULE_OUTPUTS = {
    "keyvault": {"key_vault_uri": "https://kvexample123456.vault.azure.net/", "key_vault_id": "/kv"},
    "runners": {"vmss_id": VMSS_ID, "computer_name_prefix": "gh-runner"},
    "storage": {"queue_url": "https://stexample123456.queue.core.windows.net/busy-runners",
                "queue_id": "/queue", "image_definition_id": "/image",
                # With pool_learned (else null): the storage module's own expression, evaluated
                # below with the account's endpoint as stand-in (learned_state_url_of_storage()).
                "learned_state_url": None, "operator_state_container_id": None},
    "identity": {"scaler_identity_client_id": "11111111-2222-3333-4444-555555555555",
                 "scaler_identity_id": "/id/scaler", "runner_identity_id": "/id/runners"},
    "network": {"scaler_subnet_id": "/subnets/scaler", "runner_subnet_id": "/subnets/runners",
                "private_dns_zone_ids": {"key_vault": "/zones/vaultcore", "queue": "/zones/queue"}},
}
BLOB_ENDPOINT = "https://stexample123456.blob.core.windows.net/"
STATE_CONTAINER_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                      "Microsoft.Storage/storageAccounts/stexample123456/blobServices/default/containers/operator-state")
# Required example inputs that have no default (user secrets and artefacts).
EXAMPLE_INPUTS = {
    "admin_ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@example",
    "operator_package": {"url": "https://example.invalid/operator", "sha256": "0" * 64},
}
EXAMPLES = sorted(p.name for p in (TERRAFORM / "examples").iterdir() if p.is_dir())


def _module_block(path: Path, name: str):
    found = blocks(parse_file(path), "module", name)
    assert len(found) == 1, f"{path} must hold exactly one module \"{name}\""
    return block_body(found[0])


def _call_args(body, scope: dict[str, Any]) -> dict[str, Any]:
    evaluator = Evaluator(scope)
    return {name: evaluator.eval(expr) for name, expr in attributes(body).items() if name != "source"}


# Root variables whose validations this path evaluates (the rest use functions such as
# cidrhost() or formatdate() that hcleval does not model): the demand source's contract,
# and the pool's (parking, schedules, learned mode, prices, and the disk and DNS zones they
# need).
DEMAND_VARIABLES = ["github_demand", "pool_min_instances", "runner_labels", "scale_set_name"]
POOL_VARIABLES = ["pool_parked_instances", "pool_schedules", "pool_learned", "pool_prices", "runners", "network"]


def render_for_example(example: str, overrides: dict[str, Any] | None = None,
                       root_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return json.loads(scaler_locals_for_example(example, overrides, root_inputs)["operator_config_json"])


def learned_state_url_of_storage() -> str:
    """The storage module's learned_state_url output with operator_state_enabled, its container's
    name read from the container resource and the account's blob endpoint as stand-in."""
    main = parse_file(STORAGE / "main.tf")
    container = blocks(main, "resource", "azurerm_storage_container", "operator_state")
    assert len(container) == 1, "modules/storage must declare azurerm_storage_container.operator_state"
    name = Evaluator({}).eval(attribute(block_body(container[0]), "name"))
    output = blocks(parse_file(STORAGE / "outputs.tf"), "output", "learned_state_url")
    scope = {"var": {"operator_state_enabled": True},
             "azurerm_storage_account": {"this": {"primary_blob_endpoint": BLOB_ENDPOINT}},
             "azurerm_storage_container": {"operator_state": [{"name": name}]}}
    return Evaluator(scope).eval(attribute(block_body(output[0]), "value"))


def root_for_example(example: str, overrides: dict[str, Any] | None = None,
                     root_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The root module's evaluation scope for one example: `var` (defaults applied),
    `module` (stand-in outputs) and `local` (evaluated on demand). `overrides` are the
    example's variables; `root_inputs` set root variables the example does not pass
    (the pool's parking settings), as a copy of the example would."""
    example_dir = TERRAFORM / "examples" / example
    example_vars = resolve_inputs(example_dir, {**EXAMPLE_INPUTS, **(overrides or {})})
    example_scope = {"var": example_vars, "azurerm_resource_group": {"this": {"name": example_vars["resource_group_name"]}}}
    root_args = _call_args(_module_block(example_dir / "main.tf", "github_runners"), example_scope)
    root_vars = resolve_inputs(TERRAFORM, {**root_args, **(root_inputs or {})})

    module_outputs = dict(MODULE_OUTPUTS)
    module_outputs["keyvault"] = {**MODULE_OUTPUTS["keyvault"],
                                  "github_credential_secret_name": root_vars["github_credential_secret_name"]}
    if root_vars["pool_learned"]:
        module_outputs["storage"] = {**MODULE_OUTPUTS["storage"], "learned_state_url": learned_state_url_of_storage(),
                                     "operator_state_container_id": STATE_CONTAINER_ID}
        module_outputs["network"] = {**MODULE_OUTPUTS["network"], "private_dns_zone_ids": {
            **MODULE_OUTPUTS["network"]["private_dns_zone_ids"], "blob": "/zones/blob"}}
    root_scope: dict[str, Any] = {"var": root_vars, "module": module_outputs}
    root_scope["local"] = LocalValues(TERRAFORM, root_scope, {"location": "westeurope"})
    return root_scope


def root_output(example: str, name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The value of a root module output for one example."""
    root_scope = root_for_example(example, overrides)
    output = blocks(parse_file(TERRAFORM / "outputs.tf"), "output", name)
    assert len(output) == 1, f"terraform/outputs.tf must declare output \"{name}\""
    return Evaluator(root_scope).eval(attribute(block_body(output[0]), "value"))


def scaler_locals_for_example(example: str, overrides: dict[str, Any] | None = None,
                              root_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scaler module's operator_config_json and user_data locals for one example.
    The demand source's and the pool's root validations and every scaler validation of
    operator_config must pass on the way, as they would in a plan."""
    root_scope = root_for_example(example, overrides, root_inputs)
    assert validation_failures(TERRAFORM, root_scope["var"], DEMAND_VARIABLES + POOL_VARIABLES) == []
    scaler_args = _call_args(_module_block(TERRAFORM / "main.tf", "scaler"), root_scope)
    scaler_vars = resolve_inputs(SCALER, scaler_args)
    assert validation_failures(SCALER, scaler_vars, ["operator_config"]) == []

    locals_body = block_body(blocks(parse_file(SCALER / "main.tf"), "locals")[0])
    scope = {"var": scaler_vars, "path": {"module": str(SCALER)}, "local": {}}
    scope["local"]["operator_config_json"] = Evaluator(scope).eval(attribute(locals_body, "operator_config_json"))
    scope["local"]["user_data"] = Evaluator(scope).eval(attribute(locals_body, "user_data"))
    return scope["local"]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    assert SCHEMA_PATH.exists(), (
        f"{SCHEMA_PATH} is missing: it is generated from the operator's config types (run `just generate`)"
    )
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendered_config_of_each_example_matches_the_operator_schema(example: str, schema: dict[str, Any]) -> None:
    config = render_for_example(example)
    jsonschema.validate(config, schema, format_checker=jsonschema.FormatChecker())


def test_repo_example_renders_repository_scope_and_pat_credential() -> None:
    config = render_for_example("repo-runners")
    assert config["github"]["scope"] == {"repository": "octo-org/octo-repo"}
    assert "app" not in config["github"]["credential"], "no GitHub App: the secret is a PAT"
    assert "runner_group" not in config["github"]
    assert config["pool"]["min"] == 0 and config["pool"]["max"] == 10, "the repo example scales from zero"
    assert config["github"]["demand"] == "scale_set"
    assert config["github"]["scale_set_name"] == "vmss-gh-runners", "defaults to the VM scale set's name"
    assert config["pool"]["free_target_percentage"] == 25
    assert config["github"]["labels"] == ["self-hosted", "linux", "x64", "azure"]
    assert config["server"]["listen"] == "0.0.0.0:8080"
    assert config["azure"]["vmss_resource_id"] == VMSS_ID
    assert config["azure"]["computer_name_prefix"] == "gh-runner", "the operator knows which instances are the pool's"
    assert config["pool"]["keep_unhealthy_for_debugging"] is False, "off unless asked for"


def test_org_example_renders_organization_scope_runner_group_and_app() -> None:
    config = render_for_example("org-runners")
    assert config["github"]["scope"] == {"organization": "octo-org"}
    assert config["github"]["runner_group"] == "azure-vmss"
    assert config["github"]["credential"]["app"] == {"app_id": 123456, "installation_id": 7890123}
    assert config["pool"]["scale_in_delay"] == "10m", "operator override reaches the config"
    assert config["pool"]["registration_timeout"] == "10m", "optional() default applied"
    assert config["github"]["demand"] == "scale_set"
    assert config["github"]["scale_set_name"] == "azure-linux-spot", "created in the runner group above"
    assert root_output("org-runners", "runs_on") == "azure-linux-spot"


def test_seed_parameters_flow_from_example_variables_into_the_config() -> None:
    config = render_for_example("repo-runners", {
        "github_repository": "acme/widgets", "runner_labels": ["gpu"],
        "pool_min_instances": 3, "pool_max_instances": 7, "pool_free_target_percentage": 0,
    })
    assert config["github"]["scope"] == {"repository": "acme/widgets"}
    assert config["github"]["labels"] == ["gpu"]
    assert (config["pool"]["min"], config["pool"]["max"], config["pool"]["free_target_percentage"]) == (3, 7, 0)


# The two demand sources (github.demand), each with the pool floor it allows.
DEMAND_MODES = {
    "scale_set with min 0": {"github_demand": "scale_set", "pool_min_instances": 0},
    "none with min 1": {"github_demand": "none", "pool_min_instances": 1},
}


@pytest.mark.parametrize("mode", sorted(DEMAND_MODES))
def test_demand_mode_and_pool_floor_reach_the_config(mode: str, schema: dict[str, Any]) -> None:
    overrides = DEMAND_MODES[mode]
    config = render_for_example("repo-runners", overrides)
    jsonschema.validate(config, schema, format_checker=jsonschema.FormatChecker())
    assert config["github"]["demand"] == overrides["github_demand"]
    assert config["pool"]["min"] == overrides["pool_min_instances"]
    assert config["github"]["jit"] is True, "scale-set runners register only with JIT configs"
    if overrides["github_demand"] == "scale_set":
        assert config["github"]["scale_set_name"] == "vmss-gh-runners"
    else:
        assert "scale_set_name" not in config["github"], "no scale set without scale-set demand"
        assert config["github"]["labels"] == ["self-hosted", "linux", "x64", "azure"]


def test_runs_on_is_the_scale_set_name_or_the_label_list() -> None:
    assert root_output("repo-runners", "runs_on") == "vmss-gh-runners"
    assert root_output("repo-runners", "runs_on", {"github_demand": "none", "pool_min_instances": 1}) == [
        "self-hosted", "linux", "x64", "azure"]


def test_scale_set_name_given_reaches_the_config_and_runs_on_alike() -> None:
    overrides = {"scale_set_name": "linux-x64_2.large"}
    assert render_for_example("repo-runners", overrides)["github"]["scale_set_name"] == "linux-x64_2.large"
    assert root_output("repo-runners", "runs_on", overrides) == "linux-x64_2.large"


def test_scale_set_may_have_no_extra_labels(schema: dict[str, Any]) -> None:
    config = render_for_example("repo-runners", {"runner_labels": []})
    jsonschema.validate(config, schema, format_checker=jsonschema.FormatChecker())
    assert config["github"]["labels"] == []


def _root_refusals(overrides: dict[str, Any]) -> dict[str, list[str]]:
    """Which demand-contract variables refuse the repo example with these inputs, and why."""
    root_vars = root_for_example("repo-runners", overrides)["var"]
    out: dict[str, list[str]] = {}
    for name, message in validation_failures(TERRAFORM, root_vars, DEMAND_VARIABLES):
        out.setdefault(name, []).append(message)
    return out


def test_min_zero_without_a_demand_source_is_refused_by_the_variable_contract() -> None:
    refusals = _root_refusals({"github_demand": "none", "pool_min_instances": 0})
    assert list(refusals) == ["pool_min_instances"]
    assert "github_demand = \"none\"" in refusals["pool_min_instances"][0]
    assert _root_refusals({"github_demand": "scale_set", "pool_min_instances": 0}) == {}
    assert _root_refusals({"github_demand": "none", "pool_min_instances": 1}) == {}


@pytest.mark.parametrize("overrides, variable", [
    ({"github_demand": "listener"}, "github_demand"),
    ({"pool_min_instances": -1}, "pool_min_instances"),
    ({"pool_min_instances": 0.5}, "pool_min_instances"),
    ({"github_demand": "none", "runner_labels": [], "pool_min_instances": 1}, "runner_labels"),
    ({"scale_set_name": "linux x64"}, "scale_set_name"),
    ({"scale_set_name": "x" * 101}, "scale_set_name"),
    ({"github_demand": "none", "pool_min_instances": 1, "scale_set_name": "linux"}, "scale_set_name"),
], ids=["unknown demand", "negative min", "fractional min", "no labels without scale set",
        "scale set name with a space", "scale set name too long", "scale set name without scale set"])
def test_the_demand_contract_refuses(overrides: dict[str, Any], variable: str) -> None:
    assert variable in _root_refusals(overrides)


def test_scaler_module_refuses_scale_set_demand_without_jit() -> None:
    root_scope = root_for_example("repo-runners")
    scaler_args = _call_args(_module_block(TERRAFORM / "main.tf", "scaler"), root_scope)
    scaler_args["operator_config"]["github"]["jit"] = False
    failures = validation_failures(SCALER, resolve_inputs(SCALER, scaler_args), ["operator_config"])
    assert [m for _, m in failures if "jit" in m], failures


def test_template_is_a_single_jsonencode_expression() -> None:
    text = (SCALER / "operator-config.json.tftpl").read_text(encoding="utf-8")
    assert text.startswith("${jsonencode(") and text.rstrip().endswith(")}"), (
        "keep the template one jsonencode() expression so Terraform, not string pasting, writes the JSON"
    )
    # Unknown template variables fail loudly rather than rendering a guess.
    with pytest.raises(Exception):
        render_template(SCALER / "operator-config.json.tftpl", {})
