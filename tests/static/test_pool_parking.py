"""Parked VMs (issue 16): a warm pool that costs disks, not VMs.

The pool's parking settings (pool_parked_instances, pool_schedules, pool_learned,
pool_learned_tuning, pool_prices) are followed through the real HCL chain as test_operator_config.py does:
root variables -> root `module "scaler"` -> operator-config.json.tftpl, validated against
schema/operator-config.schema.json; and into the modules they change: the runners' OS
disk (parking needs a managed disk: Azure cannot stop-deallocate an ephemeral one), the
learned mode's storage, DNS zone and role wiring. The refusals are the variables' own
validation blocks, evaluated by hcleval.py."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from conftest import TERRAFORM
from hcleval import (Evaluator, LocalValues, ObjectType, attribute, block_body, blocks, module_variables,
                     parse_file, resolve_inputs, type_spec, validation_failures)
from test_operator_config import (BLOB_ENDPOINT, POOL_VARIABLES, SCHEMA_PATH, STATE_CONTAINER_ID, DEMAND_VARIABLES,
                                  learned_state_url_of_storage, render_for_example, root_for_example)

RUNNERS = TERRAFORM / "modules" / "runners"
SCALER = TERRAFORM / "modules" / "scaler"
NEW_POOL_KEYS = {"parked", "schedules", "learned", "prices"}

WORKING_HOURS = {"cron": "* 7-18 * * 1-5", "timezone": "Europe/Berlin", "min_instances": 2, "parked_instances": 4}
NIGHT = {"cron": "* 0-5 * * *", "timezone": "America/Argentina/Buenos_Aires", "free_target_percentage": 0}
# Every pool.learned tuning field Terraform sets, none at the operator's default.
FULL_TUNING = {"slot": "2h", "burst_window": "2m", "warm_quantile": 0.1, "reserve_quantile": 0.9, "lead": "30m",
               "half_life": "14d", "history_weeks": 8, "save_period": "1m 30s"}
# pool.learned fields Terraform does not set: state_url comes from the storage module, and
# seed_trace is a file on the scaler VM that Terraform cannot put there.
LEARNED_FIELDS_NOT_TUNED = {"state_url", "seed_trace"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _pool_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of the config's `pool` object, following its local $ref ("#/$defs/PoolConfig")."""
    node = schema.get("properties", {}).get("pool", {})
    if "$ref" in node:
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validate(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Validate against the operator's schema. A schema generated before the operator knew
    parking refuses the new pool keys as additional properties: say so, so that the cause
    (regenerate schema/ on main: `just generate`) is not mistaken for a Terraform bug."""
    known = set(_pool_schema(schema).get("properties", {}))
    missing = sorted((NEW_POOL_KEYS & set(config.get("pool", {}))) - known)
    if missing:
        pytest.fail(f"{SCHEMA_PATH.name} has no pool.{', pool.'.join(missing)} yet (regenerate it from the "
                    "operator's config types on main: `just generate`); the config is otherwise unchecked", pytrace=False)
    jsonschema.validate(config, schema, format_checker=jsonschema.FormatChecker())


def _learned_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of `pool.learned` (LearnedConfig), following its $ref."""
    for option in _pool_schema(schema)["properties"]["learned"].get("anyOf", []):
        if "$ref" in option:
            target: Any = schema
            for part in option["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return target
    raise AssertionError("pool.learned has no $ref to its definition in the schema")


def _refusals(root_inputs: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Which root variables refuse the repo example with these root inputs, and why."""
    root_vars = root_for_example("repo-runners", overrides, root_inputs)["var"]
    out: dict[str, list[str]] = {}
    for name, message in validation_failures(TERRAFORM, root_vars,
                                             DEMAND_VARIABLES + POOL_VARIABLES + ["pool_learned_tuning"]):
        out.setdefault(name, []).append(message)
    return out


# ------------------------------------------------------------------ the rendered config

def test_a_pool_without_parking_renders_none_of_the_new_keys() -> None:
    for example in ("repo-runners", "org-runners"):
        pool = render_for_example(example)["pool"]
        assert not NEW_POOL_KEYS & set(pool), f"{example}: today's configs must not change ({sorted(pool)})"


def test_parked_instances_reach_the_config(schema: dict[str, Any]) -> None:
    config = render_for_example("repo-runners", {"pool_min_instances": 1, "pool_max_instances": 10},
                                {"pool_parked_instances": 3})
    assert (config["pool"]["min"], config["pool"]["parked"], config["pool"]["max"]) == (1, 3, 10)
    _validate(config, schema)


def test_schedules_reach_the_config_with_the_operators_names_and_only_the_fields_set(schema: dict[str, Any]) -> None:
    config = render_for_example("repo-runners", None, {"pool_schedules": [WORKING_HOURS, NIGHT]})
    assert config["pool"]["schedules"] == [
        {"cron": "* 7-18 * * 1-5", "timezone": "Europe/Berlin", "min": 2, "parked": 4},
        {"cron": "* 0-5 * * *", "timezone": "America/Argentina/Buenos_Aires", "free_target_percentage": 0},
    ], "min_instances -> min, parked_instances -> parked; unset fields stay out (the base values apply)"
    assert "parked" not in config["pool"], "no base parked count was set"
    _validate(config, schema)


def test_learned_mode_renders_the_state_blob_url_of_the_storage_module(schema: dict[str, Any]) -> None:
    url = learned_state_url_of_storage()
    assert url == f"{BLOB_ENDPOINT}operator-state/learned-demand.json"
    config = render_for_example("repo-runners", None, {"pool_learned": True})
    assert config["pool"]["learned"] == {"state_url": url}
    assert "schedules" not in config["pool"]
    _validate(config, schema)


def test_learned_tuning_reaches_the_config_with_the_operators_names_and_only_the_fields_set(
        schema: dict[str, Any]) -> None:
    url = learned_state_url_of_storage()
    config = render_for_example("repo-runners", None, {
        "pool_learned": True, "pool_learned_tuning": {"slot": "6h", "burst_window": "2m", "history_weeks": 8}})
    assert config["pool"]["learned"] == {"state_url": url, "slot": "6h", "burst_window": "2m", "history_weeks": 8}, \
        "unset fields stay out (the operator's defaults apply)"
    _validate(config, schema)

    full = render_for_example("org-runners", None, {"pool_learned": True, "pool_learned_tuning": FULL_TUNING})
    assert full["pool"]["learned"] == {"state_url": url, **FULL_TUNING}
    _validate(full, schema)

    untuned = render_for_example("repo-runners", None, {"pool_learned": True, "pool_learned_tuning": {}})
    assert untuned["pool"]["learned"] == {"state_url": url}, "an empty tuning is no tuning"


def test_learned_tuning_has_every_field_of_the_operators_learned_config_it_can_set(schema: dict[str, Any]) -> None:
    spec = type_spec(module_variables(TERRAFORM)["pool_learned_tuning"])
    assert isinstance(spec, ObjectType)
    assert set(spec.attrs) == set(_learned_schema(schema)["properties"]) - LEARNED_FIELDS_NOT_TUNED
    assert all(attr.default is None for attr in spec.attrs.values()), "no Terraform-side defaults: the operator's apply"
    scaler_spec = type_spec(module_variables(SCALER)["operator_config"]).attrs["pool"].attrs["learned"].type
    assert set(scaler_spec.attrs) == set(spec.attrs) | {"state_url"}, "the scaler module must pass every field on"


def test_prices_reach_the_config_with_usd_by_default(schema: dict[str, Any]) -> None:
    config = render_for_example("repo-runners", None, {
        "pool_parked_instances": 2, "pool_prices": {"running_per_hour": 0.21, "parked_per_hour": 0.0133}})
    assert config["pool"]["prices"] == {"currency": "USD", "running_per_hour": 0.21, "parked_per_hour": 0.0133}
    _validate(config, schema)


def test_every_parking_mode_at_once_is_one_valid_config(schema: dict[str, Any]) -> None:
    config = render_for_example("org-runners", None, {
        "pool_parked_instances": 5, "pool_schedules": [WORKING_HOURS],
        "pool_prices": {"currency": "EUR", "running_per_hour": 0.4, "parked_per_hour": 0.02}})
    assert config["pool"]["parked"] == 5 and len(config["pool"]["schedules"]) == 1
    assert config["pool"]["prices"]["currency"] == "EUR"
    _validate(config, schema)


# ------------------------------------------------------------------ the refusals

@pytest.mark.parametrize("root_inputs, variable, says", [
    ({"pool_parked_instances": -1}, "pool_parked_instances", "whole number"),
    ({"pool_parked_instances": 1.5}, "pool_parked_instances", "whole number"),
    ({"pool_parked_instances": 11}, "pool_parked_instances", "must not exceed pool_max_instances (10)"),
    ({"pool_schedules": [{**WORKING_HOURS, "cron": "7-18 * * 1-5"}]}, "pool_schedules", "five space-separated fields"),
    ({"pool_schedules": [{**WORKING_HOURS, "cron": "* 7-18 * * 1-5 2026"}]}, "pool_schedules", "five space-separated fields"),
    ({"pool_schedules": [{**WORKING_HOURS, "timezone": "CET"}]}, "pool_schedules", "IANA time zone name"),
    ({"pool_schedules": [{**WORKING_HOURS, "timezone": "europe/berlin"}]}, "pool_schedules", "IANA time zone name"),
    ({"pool_schedules": [{**WORKING_HOURS, "parked_instances": 0.5}]}, "pool_schedules", "whole numbers of at least 0"),
    ({"pool_schedules": [{**WORKING_HOURS, "min_instances": -1}]}, "pool_schedules", "whole numbers of at least 0"),
    ({"pool_schedules": [{**NIGHT, "free_target_percentage": 100}]}, "pool_schedules", "0 to 99"),
    ({"pool_schedules": [{**WORKING_HOURS, "min_instances": 6, "parked_instances": 5}]}, "pool_schedules",
     "must not exceed pool_max_instances"),
    ({"pool_parked_instances": 9, "pool_schedules": [{**NIGHT, "min_instances": 2}]}, "pool_schedules",
     "must not exceed pool_max_instances"),
    ({"pool_learned": True, "pool_schedules": [WORKING_HOURS]}, "pool_learned", "exclusive"),
    ({"pool_prices": {"running_per_hour": 0, "parked_per_hour": 0}}, "pool_prices", "greater than 0"),
    ({"pool_prices": {"running_per_hour": 0.1, "parked_per_hour": 0.2}}, "pool_prices", "must not exceed"),
    ({"pool_prices": {"currency": "usd", "running_per_hour": 0.2, "parked_per_hour": 0.01}}, "pool_prices", "ISO 4217"),
    ({"pool_parked_instances": 1, "runners": {"os_disk": {"ephemeral": True}}}, "runners", "cannot be combined with parking"),
    ({"pool_schedules": [WORKING_HOURS], "runners": {"os_disk": {"ephemeral": True}}}, "runners",
     "cannot be combined with parking"),
    ({"pool_learned": True, "runners": {"os_disk": {"ephemeral": True}}}, "runners", "cannot be combined with parking"),
    ({"pool_learned": True, "network": {"existing_private_dns_zone_ids": {"key_vault": "/kv", "queue": "/q"}}},
     "network", "existing_private_dns_zone_ids.blob"),
    ({"pool_learned_tuning": {"slot": "4h"}}, "pool_learned_tuning", "while pool_learned = false"),
    ({"pool_learned": True, "pool_learned_tuning": {"slot": "7m"}}, "pool_learned_tuning",
     "pool_learned_tuning.slot (\"7m\") must be whole minutes, at least 1 minute, dividing a day"),
    ({"pool_learned": True, "pool_learned_tuning": {"slot": "90s"}}, "pool_learned_tuning", "slot (\"90s\") must be whole minutes"),
    ({"pool_learned": True, "pool_learned_tuning": {"slot": "0m"}}, "pool_learned_tuning", "slot (\"0m\") must be whole minutes"),
    ({"pool_learned": True, "pool_learned_tuning": {"slot": "4 hours"}}, "pool_learned_tuning",
     "<whole number><unit> parts with units s, m, h or d"),
    ({"pool_learned": True, "pool_learned_tuning": {"burst_window": "10s"}}, "pool_learned_tuning",
     "pool_learned_tuning.burst_window (\"10s\") must be from 30s to 1h"),
    ({"pool_learned": True, "pool_learned_tuning": {"burst_window": "1h 1s"}}, "pool_learned_tuning",
     "burst_window (\"1h 1s\") must be from 30s to 1h"),
    ({"pool_learned": True, "pool_learned_tuning": {"burst_window": "500ms"}}, "pool_learned_tuning",
     "burst_window (\"500ms\")"),
    ({"pool_learned": True, "pool_learned_tuning": {"warm_quantile": 0.6, "reserve_quantile": 0.5}}, "pool_learned_tuning",
     "warm_quantile must not exceed pool_learned_tuning.reserve_quantile"),
    ({"pool_learned": True, "pool_learned_tuning": {"reserve_quantile": 1.5}}, "pool_learned_tuning", "must each be from 0 to 1"),
    ({"pool_learned": True, "pool_learned_tuning": {"warm_quantile": -0.1}}, "pool_learned_tuning", "must each be from 0 to 1"),
    ({"pool_learned": True, "pool_learned_tuning": {"history_weeks": 0}}, "pool_learned_tuning",
     "history_weeks must be a whole number from 1 to 520"),
    ({"pool_learned": True, "pool_learned_tuning": {"history_weeks": 521}}, "pool_learned_tuning", "from 1 to 520"),
    ({"pool_learned": True, "pool_learned_tuning": {"history_weeks": 2.5}}, "pool_learned_tuning", "whole number from 1 to 520"),
    ({"pool_learned": True, "pool_learned_tuning": {"lead": "1d"}}, "pool_learned_tuning",
     "pool_learned_tuning.lead (\"1d\") must be less than a day"),
    ({"pool_learned": True, "pool_learned_tuning": {"half_life": "0d"}}, "pool_learned_tuning",
     "pool_learned_tuning.half_life (\"0d\") must be more than zero"),
    ({"pool_learned": True, "pool_learned_tuning": {"save_period": "10s"}}, "pool_learned_tuning",
     "pool_learned_tuning.save_period (\"10s\") must be at least 30s"),
], ids=["negative parked", "fractional parked", "min + parked above max", "cron of four fields", "cron of six fields",
        "time zone abbreviation", "time zone in lower case", "fractional schedule parked", "negative schedule min",
        "schedule free target 100", "schedule min + parked above max", "schedule inherits a base parked above max",
        "learned with schedules", "free running price", "parked dearer than running", "currency in lower case",
        "ephemeral with parked", "ephemeral with a parking schedule", "ephemeral with learned",
        "a hub's zones without blob, learned", "tuning without learned", "slot not dividing a day",
        "slot not whole minutes", "slot of zero", "duration outside the format", "burst window below 30 s",
        "burst window above an hour", "burst window in milliseconds", "warm above reserve", "quantile above 1",
        "quantile below 0", "no weeks of history", "history above 520 weeks", "fractional history", "lead of a day",
        "half-life of zero", "save period below 30 s"])
def test_the_pool_contract_refuses(root_inputs: dict[str, Any], variable: str, says: str) -> None:
    refusals = _refusals(root_inputs)
    assert list(refusals) == [variable], refusals
    assert any(says in message for message in refusals[variable]), refusals[variable]


def test_a_schedule_min_of_zero_needs_the_scale_set() -> None:
    entry = {"cron": "* * * * 0,6", "timezone": "UTC", "min_instances": 0}
    refusals = _refusals({"pool_schedules": [entry]}, {"github_demand": "none", "pool_min_instances": 1})
    assert list(refusals) == ["pool_schedules"] and "github_demand = \"none\"" in refusals["pool_schedules"][0]
    assert _refusals({"pool_schedules": [entry]}) == {}


@pytest.mark.parametrize("root_inputs", [
    {"pool_parked_instances": 9, "pool_min_instances": 1},
    {"pool_schedules": [{"cron": "*/15 8-17 1-31 JAN-DEC MON-FRI", "timezone": "Etc/GMT-14"}]},
    {"pool_schedules": [{"cron": "0 0 * * *", "timezone": "America/Port-au-Prince", "parked_instances": 0}]},
    {"pool_learned": True},
    {"pool_learned": True, "network": {"existing_private_dns_zone_ids": {"key_vault": "/kv", "queue": "/q", "blob": "/b"}}},
    {"pool_parked_instances": 2, "runners": {"os_disk": {"ephemeral": False}}},
    {"pool_prices": {"running_per_hour": 0.2, "parked_per_hour": 0}},
    {"pool_learned": True, "pool_learned_tuning": FULL_TUNING},
    {"pool_learned": True, "pool_learned_tuning": {}},
    {"pool_learned": True, "pool_learned_tuning": {"slot": "1m", "burst_window": "30s", "lead": "23h 59m 59s",
                                                   "half_life": "1s", "history_weeks": 520, "save_period": "30s"}},
    {"pool_learned": True, "pool_learned_tuning": {"slot": "1d", "burst_window": "1h", "warm_quantile": 1,
                                                   "reserve_quantile": 1, "lead": "0s", "history_weeks": 1}},
    {"pool_learned": True, "pool_learned_tuning": {"slot": "1h30m", "warm_quantile": 0, "reserve_quantile": 0}},
    {"pool_learned": True, "pool_learned_tuning": {"slot": "24m", "warm_quantile": 0.5}},
], ids=["parked up to max", "cron names and steps", "parked 0 in a schedule", "learned", "learned with a hub's zones",
        "explicitly managed with parking", "free parking", "learned with every tuning field", "learned, empty tuning",
        "tuning at its lower bounds", "tuning at its upper bounds", "slot of 1h30m, nothing reserved",
        "slot of 24 minutes, warm alone"])
def test_the_pool_contract_accepts(root_inputs: dict[str, Any]) -> None:
    assert _refusals(root_inputs) == {}


# ------------------------------------------------------------------ the runners' OS disk

def _runners_disk(root_inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The runners module's chosen OS disk (its locals) for the repo example with these root
    inputs, evaluated from the root's own `module "runners"` arguments, and the failures of
    the module's os_disk validations."""
    root_scope = root_for_example("repo-runners", None, root_inputs)
    call = block_body(blocks(parse_file(TERRAFORM / "main.tf"), "module", "runners")[0])
    given = {name: Evaluator(root_scope).eval(attribute(call, name)) for name in ("os_disk", "parking_enabled")}
    # The other required inputs do not reach the disk; stand-ins.
    stand_ins = {"admin_ssh_public_key": "ssh-ed25519 AAAA x", "custom_data": "#cloud-config\n", "identity_id": "/id",
                 "location": "westeurope", "name": "vmss-gh-runners", "resource_group_name": "rg",
                 "source_image": {"gallery_image_id": "/image"}, "subnet_id": "/subnet"}
    runner_vars = resolve_inputs(RUNNERS, {**stand_ins, **given})
    scope: dict[str, Any] = {"var": runner_vars}
    scope["local"] = LocalValues(RUNNERS, scope)
    disk = {"ephemeral": scope["local"]["os_disk_ephemeral"], "caching": scope["local"]["os_disk_caching"],
            "storage_type": scope["local"]["os_disk_storage_type"], "parking_enabled": runner_vars["parking_enabled"]}
    return disk, validation_failures(RUNNERS, runner_vars, ["os_disk"])


@pytest.mark.parametrize("root_inputs, ephemeral, caching, storage_type", [
    ({}, True, "ReadOnly", "Standard_LRS"),
    ({"pool_parked_instances": 1}, False, "ReadWrite", "StandardSSD_LRS"),
    ({"pool_schedules": [WORKING_HOURS]}, False, "ReadWrite", "StandardSSD_LRS"),
    ({"pool_learned": True}, False, "ReadWrite", "StandardSSD_LRS"),
    ({"pool_schedules": [NIGHT]}, True, "ReadOnly", "Standard_LRS"),
    ({"pool_parked_instances": 1, "runners": {"os_disk": {"storage_type": "Premium_ZRS"}}}, False, "ReadWrite", "Premium_ZRS"),
    ({"runners": {"os_disk": {"ephemeral": False}}}, False, "ReadWrite", "StandardSSD_LRS"),
    ({"runners": {"os_disk": {"storage_type": "Premium_LRS"}}}, True, "ReadOnly", "Premium_LRS"),
], ids=["no parking: ephemeral as before", "parked: managed", "a parking schedule: managed", "learned: managed",
        "a schedule that parks nothing: ephemeral", "storage type given", "managed by choice", "ephemeral on premium"])
def test_the_runners_os_disk_follows_the_pool(root_inputs: dict[str, Any], ephemeral: bool, caching: str,
                                              storage_type: str) -> None:
    disk, failures = _runners_disk(root_inputs)
    assert failures == []
    assert (disk["ephemeral"], disk["caching"], disk["storage_type"]) == (ephemeral, caching, storage_type)
    parks = (root_inputs.get("pool_parked_instances", 0) > 0 or root_inputs.get("pool_learned", False)
             or any((entry.get("parked_instances") or 0) > 0 for entry in root_inputs.get("pool_schedules", [])))
    assert disk["parking_enabled"] is parks


def test_the_runners_module_itself_refuses_an_ephemeral_disk_for_a_parking_pool() -> None:
    stand_ins = {"admin_ssh_public_key": "ssh-ed25519 AAAA x", "custom_data": "", "identity_id": "/id",
                 "location": "westeurope", "name": "vmss-gh-runners", "resource_group_name": "rg",
                 "source_image": {"gallery_image_id": "/image"}, "subnet_id": "/subnet"}
    refused = resolve_inputs(RUNNERS, {**stand_ins, "parking_enabled": True, "os_disk": {"ephemeral": True}})
    assert [m for _, m in validation_failures(RUNNERS, refused, ["os_disk"]) if "parking_enabled" in m]
    zone_redundant = resolve_inputs(RUNNERS, {**stand_ins, "os_disk": {"storage_type": "StandardSSD_ZRS"}})
    assert [m for _, m in validation_failures(RUNNERS, zone_redundant, ["os_disk"]) if "zone-redundant" in m]
    managed_zrs = resolve_inputs(RUNNERS, {**stand_ins, "parking_enabled": True, "os_disk": {"storage_type": "StandardSSD_ZRS"}})
    assert validation_failures(RUNNERS, managed_zrs, ["os_disk"]) == []


# ------------------------------------------------------------------ the learned mode's wiring

def _module_args(root_scope: dict[str, Any], module: str, names: list[str]) -> dict[str, Any]:
    call = block_body(blocks(parse_file(TERRAFORM / "main.tf"), "module", module)[0])
    return {name: Evaluator(root_scope).eval(attribute(call, name)) for name in names}


def test_learned_mode_creates_the_container_its_dns_zone_and_a_container_scoped_grant() -> None:
    learned = root_for_example("repo-runners", None, {"pool_learned": True})
    assert _module_args(learned, "storage", ["operator_state_enabled", "blob_private_dns_zone_id"]) == {
        "operator_state_enabled": True, "blob_private_dns_zone_id": "/zones/blob"}
    assert _module_args(learned, "network", ["blob_private_dns_zone_enabled"]) == {"blob_private_dns_zone_enabled": True}
    grants = _module_args(learned, "identity", ["state_container_ids"])["state_container_ids"]
    assert grants == {"learned_demand": STATE_CONTAINER_ID}, "the grant's scope is the container, not the account"
    assert "/blobServices/default/containers/" in grants["learned_demand"]

    plain = root_for_example("repo-runners")
    assert _module_args(plain, "storage", ["operator_state_enabled", "blob_private_dns_zone_id"]) == {
        "operator_state_enabled": False, "blob_private_dns_zone_id": None}
    assert _module_args(plain, "identity", ["state_container_ids"])["state_container_ids"] == {}


def test_the_state_container_grant_is_blob_data_contributor_on_each_container() -> None:
    main = parse_file(TERRAFORM / "modules" / "identity" / "main.tf")
    found = blocks(main, "resource", "azurerm_role_assignment", "scaler_state_container")
    assert len(found) == 1
    body = block_body(found[0])
    scope = {"var": {"state_container_ids": {"learned_demand": STATE_CONTAINER_ID}},
             "each": {"key": "learned_demand", "value": STATE_CONTAINER_ID}}
    assert Evaluator(scope).eval(attribute(body, "for_each")) == {"learned_demand": STATE_CONTAINER_ID}
    assert Evaluator(scope).eval(attribute(body, "scope")) == STATE_CONTAINER_ID
    assert Evaluator(scope).eval(attribute(body, "role_definition_name")) == "Storage Blob Data Contributor"


def test_the_scaler_refuses_a_state_url_outside_the_operator_state_container() -> None:
    root_scope = root_for_example("repo-runners", None, {"pool_learned": True})
    call = block_body(blocks(parse_file(TERRAFORM / "main.tf"), "module", "scaler")[0])
    args = {"operator_config": Evaluator(root_scope).eval(attribute(call, "operator_config"))}
    stand_ins = {"admin_ssh_public_key": "ssh-ed25519 AAAA x", "identity_client_id": "c", "identity_id": "/id",
                 "location": "westeurope", "name": "vm-gh-scaler", "operator_package": {"url": "https://x", "sha256": "0" * 64},
                 "resource_group_name": "rg", "subnet_id": "/subnet"}
    good = resolve_inputs(SCALER, {**stand_ins, **args})
    assert validation_failures(SCALER, good, ["operator_config"]) == []
    args["operator_config"]["pool"]["learned"] = {"state_url": "https://stexample123456.blob.core.windows.net/other/x.json"}
    bad = resolve_inputs(SCALER, {**stand_ins, **args})
    assert [m for _, m in validation_failures(SCALER, bad, ["operator_config"]) if "operator-state" in m]


def test_the_storage_outputs_are_null_without_the_learned_mode() -> None:
    outputs = parse_file(TERRAFORM / "modules" / "storage" / "outputs.tf")
    for name in ("learned_state_url", "operator_state_container_id"):
        body = block_body(blocks(outputs, "output", name)[0])
        assert Evaluator({"var": {"operator_state_enabled": False}}).eval(attribute(body, "value")) is None, name


def test_the_repo_and_org_examples_park_nothing_so_their_disks_stay_ephemeral() -> None:
    for example in ("repo-runners", "org-runners"):
        assert root_for_example(example)["local"]["pool_parks"] is False, example
