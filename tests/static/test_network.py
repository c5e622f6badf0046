"""The network module restricts inbound traffic only. Egress is left to Azure's default
rule through the NAT gateway, and the scaler depends on it: GitHub's REST API and, with
`github_demand = "scale_set"`, GitHub's Actions service (broker.actions.githubusercontent.com,
*.actions.githubusercontent.com). An outbound rule added here must come with those
destinations, documented in docs/terraform.md ("Egress")."""

from __future__ import annotations

from typing import Any

import hcl2

from conftest import REPO_ROOT, TERRAFORM

NETWORK = TERRAFORM / "modules" / "network" / "main.tf"
ACTIONS_HOSTS = ("broker.actions.githubusercontent.com", "*.actions.githubusercontent.com")


def _unquoted(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and block labels."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, dict):
        return {_unquoted(k): _unquoted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unquoted(v) for v in value]
    return value


def _security_rules() -> list[tuple[str, dict[str, Any]]]:
    """(NSG name, rule) for every security_rule, static or dynamic, of the module."""
    doc = _unquoted(hcl2.load(NETWORK.open(encoding="utf-8")))
    rules = []
    for block in doc.get("resource", []):
        for name, body in block.get("azurerm_network_security_group", {}).items():
            for rule in body.get("security_rule", []):
                rules.append((name, rule))
            for dynamic in body.get("dynamic", []):
                for content in dynamic.get("security_rule", {}).get("content", []):
                    rules.append((name, content))
    return rules


def test_the_checker_sees_the_rules_of_both_nsgs() -> None:
    assert {name for name, _ in _security_rules()} == {"runners", "scaler"}
    assert len(_security_rules()) >= 6


def test_nsgs_hold_no_outbound_rule_so_github_stays_reachable() -> None:
    for nsg, rule in _security_rules():
        assert rule["direction"] == "Inbound", (
            f"nsg {nsg}: rule {rule['name']} is outbound; the scaler needs HTTPS to GitHub's REST API and "
            f"Actions service ({', '.join(ACTIONS_HOSTS)}): allow them and update docs/terraform.md, \"Egress\""
        )


def test_nsgs_open_nothing_from_the_internet() -> None:
    for nsg, rule in _security_rules():
        if rule["access"] == "Allow":
            sources = [rule.get("source_address_prefix")] + list(rule.get("source_address_prefixes") or [])
            assert not {"*", "Internet", "0.0.0.0/0"} & {s for s in sources if isinstance(s, str)}, (
                f"nsg {nsg}: rule {rule['name']} admits the internet"
            )


def test_the_egress_allow_list_names_the_actions_service() -> None:
    text = (REPO_ROOT / "docs" / "terraform.md").read_text(encoding="utf-8")
    section = text[text.index("## Egress"):]
    section = section[: section.index("\n## ", 1)]
    for host in (*ACTIONS_HOSTS, "api.github.com", "management.azure.com"):
        assert f"`{host}`" in section, f"docs/terraform.md, Egress: list {host}"
