"""Workflow rules that actionlint and zizmor do not enforce by themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    for line in path.read_text(encoding="utf-8").splitlines():
        match = USES.match(line)
        if not match or match.group("ref").startswith("./"):
            continue
        ref = match.group("ref")
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: pin {ref} to a full commit SHA"
        assert re.search(r"#\s*v\d+(\.\d+){0,2}", match.group("comment")), f"{path.name}: add '# vX.Y.Z' after {ref}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_default_to_none_and_jobs_ask_for_what_they_use(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert workflow.get("permissions") == {}, f"{path.name}: set top-level `permissions: {{}}`"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must declare its permissions"
        granted = job["permissions"] or {}
        assert "write-all" not in str(granted)
        for scope, level in granted.items():
            assert level in ("read", "none") or (scope, level) == ("id-token", "write"), \
                f"{path.name}: job {name} asks for {scope}: {level}"


def test_deploy_has_the_seed_inputs_and_logs_in_with_oidc() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # PyYAML reads `on:` as True
    assert set(inputs) == {"build-image", "vmss-runner-name", "vmss-scaler-name", "github-repo", "runner-labels",
                           "pool-min-instances", "pool-max-instances", "pool-free-target-percentage"}
    assert "secrets.AZURE_CREDENTIALS" not in text and "creds:" not in text and "client-secret" not in text
    steps = workflow["jobs"]["terraform"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any("terraform plan -out=tfplan" in r for r in runs) and any("terraform apply tfplan" in r for r in runs)
    assert any("backend" in r for r in runs), "deploy must use a remote state backend"
