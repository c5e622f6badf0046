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
            allowed = level in ("read", "none") or (scope, level) == ("id-token", "write")
            # The release job creates the release and uploads the operator asset.
            allowed = allowed or (path.name, name, scope, level) == ("release.yml", "operator", "contents", "write")
            assert allowed, f"{path.name}: job {name} asks for {scope}: {level}"


def test_deploy_has_the_seed_inputs_and_logs_in_with_oidc() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # PyYAML reads `on:` as True
    assert set(inputs) == {"build-image", "runner-image-version", "vmss-runner-name", "vmss-scaler-name", "github-repo",
                           "github-demand", "runner-labels", "pool-min-instances", "pool-max-instances",
                           "pool-free-target-percentage"}
    assert len(inputs) <= 10, "GitHub allows at most 10 workflow_dispatch inputs"
    assert inputs["github-demand"]["options"] == ["scale_set", "none"]
    assert "TF_VAR_github_demand: ${{ inputs.github-demand }}" in text
    assert "secrets.AZURE_CREDENTIALS" not in text and "creds:" not in text and "client-secret" not in text
    assert "backend" in (REPO_ROOT / "scripts/deploy-init.sh").read_text(), "deploy must use a remote state backend"


def test_deploy_reviews_the_plan_it_applies_and_builds_images_after_the_gallery_exists() -> None:
    """Finding 22: the approval (environment `production`) guards the apply of the saved
    plan, which a separate job made and showed; finding 8: the image job runs after the
    apply that creates the gallery, never before."""
    jobs = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    plan, apply, image = jobs["plan"], jobs["apply"], jobs["image"]
    plan_runs = " ".join(s.get("run", "") for s in plan["steps"])
    apply_runs = [s.get("run", "") for s in apply["steps"]]
    assert "terraform plan -out=tfplan" in plan_runs and "GITHUB_STEP_SUMMARY" in plan_runs
    assert plan.get("environment") != "production"
    assert apply["environment"] == "production" and apply["needs"] == "plan"
    assert "terraform apply tfplan" in apply_runs and not any("terraform plan" in r for r in apply_runs)
    assert any("download-artifact" in s.get("uses", "") for s in apply["steps"])
    assert image["needs"] == "apply" and image["uses"].endswith("image.yml")
    called = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "image.yml").read_text())[True]["workflow_call"]["inputs"]
    assert set(image["with"]) <= set(called), "every input the deploy passes is declared for workflow_call"
    assert {"minimal", "image-version", "ubuntu-version"} <= set(called)


def test_release_publishes_the_operator_with_its_checksum() -> None:
    job = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yml").read_text())["jobs"]["operator"]
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "cargo build --release --locked -p operator" in runs
    assert "sha256sum" in runs and "gh release upload" in runs
