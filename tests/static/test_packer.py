"""Packer templates cannot be built here (no packer, no Azure): check what can be
checked. Both templates bake the same vm/ directory cloud-init writes, every version
is pinned (in one file, vm/versions.env), 20.04 is refused, and every provisioning
script ends by checking its own result."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2

from conftest import REPO_ROOT

PACKER = REPO_ROOT / "packer"
TEMPLATES = {"minimal": PACKER / "minimal/minimal.pkr.hcl", "full": PACKER / "full/full.pkr.hcl"}


def _versions() -> dict[str, str]:
    pairs = {}
    for line in (REPO_ROOT / "vm/versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            pairs[key] = value
    return pairs


def _unquote(value):
    """python-hcl2 keeps string quotes in keys and values; drop them."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    return value


def _load(template: Path) -> dict:
    return _unquote(hcl2.loads(template.read_text()))


def _build(template: Path) -> dict:
    return _load(template)["build"][0]


def _provisioners(template: Path, kind: str) -> list[dict]:
    return [p[kind] for p in _build(template)["provisioner"] if kind in p]


def test_both_templates_upload_the_vm_directory_cloud_init_writes() -> None:
    for name, template in TEMPLATES.items():
        uploads = [p["source"] for p in _provisioners(template, "file")]
        assert uploads == ["${path.root}/../../vm"], f"{name}: {uploads}"


def test_both_templates_run_the_same_vm_scripts_step_and_deprovision_last() -> None:
    for name, template in TEMPLATES.items():
        scripts = [s for p in _provisioners(template, "shell") for s in p.get("scripts", [])]
        assert "${path.root}/../scripts/install-vm-scripts.sh" in scripts, name
        assert scripts[-1] == "${path.root}/../scripts/deprovision.sh", name
        for script in scripts:
            assert (template.parent / script.replace("${path.root}/", "")).resolve().is_file(), script
        first = _provisioners(template, "shell")[0]
        # Exit 2 ("done, degraded": recoverable warnings) must not fail the build.
        assert first.get("inline") == ["cloud-init status --wait > /dev/null || [ $? -eq 2 ]"], \
            f"{name} waits for cloud-init first"


def test_plugins_and_packer_are_pinned() -> None:
    for name, template in TEMPLATES.items():
        packer = _load(template)["packer"][0]
        for plugin in packer["required_plugins"][0].values():
            assert re.fullmatch(r"= \d+\.\d+\.\d+", plugin["version"]), f"{name}: {plugin}"


def test_runner_and_runner_images_are_pinned_in_one_file() -> None:
    v = _versions()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["RUNNER_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", v["RUNNER_SHA256_LINUX_X64"])
    assert re.fullmatch(r"ubuntu22/\d{8}\.\d+", v["RUNNER_IMAGES_TAG_UBUNTU_2204"])
    assert re.fullmatch(r"ubuntu24/\d{8}\.\d+", v["RUNNER_IMAGES_TAG_UBUNTU_2404"])
    assert not any("2004" in key for key in v), "20.04 is end of life and gone from runner-images"
    install = (REPO_ROOT / "vm/install-runner.sh").read_text()
    assert "sha256sum --check" in install and "RUNNER_SHA256_LINUX_X64" in install
    assert "latest" not in install


def test_minimal_offers_only_supported_ubuntu_releases() -> None:
    variables = {k: v for d in _load(TEMPLATES["minimal"])["variable"] for k, v in d.items()}
    condition = variables["ubuntu_version"]["validation"][0]["condition"]
    assert "22.04" in condition and "24.04" in condition and "20.04" not in condition


def test_every_image_script_checks_its_own_result() -> None:
    for script in [*(PACKER / "scripts").glob("*.sh"), REPO_ROOT / "vm/install-runner.sh"]:
        text = script.read_text()
        assert "set -euo pipefail" in text, script
        assert re.search(r"^# Check the result", text, re.M), f"{script} does not check its result"


def test_just_recipes_and_workflow_use_the_build_script() -> None:
    justfile = (REPO_ROOT / "justfile").read_text()
    assert "bash packer/build.sh full" in justfile and "bash packer/build.sh minimal" in justfile
    workflow = (REPO_ROOT / ".github/workflows/image.yml").read_text()
    assert "just image-minimal" in workflow and "just image\n" in workflow


def _source(template: Path) -> dict:
    return next(iter(next(iter(_load(template)["source"][0].values())).values()))


def test_builds_stay_inside_the_gallery_resource_group() -> None:
    """The deployer's image-build rights are scoped to the deployment's resource group
    (docs/deploy.md): with `location` Packer creates a temporary resource group at
    subscription scope, which that principal may not do."""
    for name, template in TEMPLATES.items():
        source = _source(template)
        assert source.get("build_resource_group_name") == "${var.resource_group_name}", name
        assert "location" not in source, name


def test_build_vm_public_ip_is_standard_and_auth_refreshes() -> None:
    """Azure creates no Basic public IPs since 31 March 2025; the azure plugin defaults
    to Standard from v2.2.0 (before: Basic). In Actions the plugin's own OIDC is used
    (a fresh federated token on demand) instead of an az login that expires after 1 h."""
    for name, template in TEMPLATES.items():
        source = _source(template)
        version = _load(template)["packer"][0]["required_plugins"][0]["azure"]["version"]
        major, minor, _ = (int(x) for x in version.removeprefix("= ").split("."))
        assert (major, minor) >= (2, 2) or source.get("public_ip_sku") == "Standard", name
        assert source.get("public_ip_sku", "Standard") == "Standard", name
        assert source["oidc_request_url"] == "${var.oidc_request_url}", name
        assert source["use_azure_cli_auth"] == '${var.oidc_request_token == ""}', name


def test_build_script_installs_the_same_plugin_for_runner_images_templates() -> None:
    """runner-images' Ubuntu templates declare no required_plugins, so build.sh installs
    the azure plugin itself: the same version our templates pin. It builds the named
    build that exists there (`ubuntu-24_04`, not `build_ubuntu_24_04`), passes image_os,
    keeps our PKR_VAR_* away from it and patches its Generation 1 SKUs to Gen2."""
    build = (REPO_ROOT / "packer/build.sh").read_text()
    pinned = {_load(t)["packer"][0]["required_plugins"][0]["azure"]["version"].removeprefix("= ")
              for t in TEMPLATES.values()}
    assert pinned == {re.search(r"^AZURE_PLUGIN_VERSION=(\S+)$", build, re.M).group(1)}
    assert 'packer plugins install github.com/hashicorp/azure "${AZURE_PLUGIN_VERSION}"' in build
    assert '-only "${build}.azure-arm.image"' in build and 'build="ubuntu-24_04"' in build
    assert '-var "image_os=${image_os}"' in build
    assert "unset \"${name}\"" in build and "'s/\"server-gen1\"/\"server\"/'" in build
