"""A configuration change reaches a running scaler without replacing the VM
(review finding 11): Terraform puts the operator config and the package pin in
the scaler VM's `user_data`, which azurerm updates in place (not ForceNew at the
contract's provider version, while `custom_data` is), and
vm/scaler/refresh-operator-config.sh writes them to disk and restarts the
operator. Here the user data is the one Terraform's expression yields for an
example (evaluated from the HCL), and the script runs against a temporary
directory with a recording restart command."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, TERRAFORM
from hcleval import attribute, block_body, blocks, parse_file
from test_operator_config import scaler_locals_for_example
from test_provider_schema import load_schema

SCRIPT = REPO_ROOT / "vm/scaler/refresh-operator-config.sh"
INSTALL = REPO_ROOT / "vm/scaler/install-operator.sh"


def _run(tmp: Path, user_data: str) -> subprocess.CompletedProcess:
    (tmp / "user-data").write_text(user_data)
    env = {**os.environ, "USER_DATA_FILE": str(tmp / "user-data"), "CONFIG_DIR": str(tmp / "etc"),
           "RESTART_COMMAND": f"touch {tmp / 'restarted'}"}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def _user_data(example: str, **overrides) -> str:
    """base64encode(local.user_data), as the VM resource sets user_data."""
    return base64.b64encode(scaler_locals_for_example(example, overrides)["user_data"].encode()).decode()


def test_config_lives_in_user_data_which_is_updatable_and_custom_data_is_not() -> None:
    schema = load_schema()["resource"]["azurerm_linux_virtual_machine"]["attributes"]
    assert schema["custom_data"].get("force_new"), "custom_data replaces the VM"
    assert not schema["user_data"].get("force_new"), "user_data is updated in place"
    vm = blocks(parse_file(TERRAFORM / "modules/scaler/main.tf"), "resource", "azurerm_linux_virtual_machine", "this")
    body = block_body(vm[0])
    assert attribute(body, "user_data") is not None
    main_tf = (TERRAFORM / "modules/scaler/main.tf").read_text()
    cloud_init_call = main_tf[main_tf.index("cloud_init = templatefile("):main_tf.index("})", main_tf.index("cloud_init = templatefile("))]
    for config_ref in ("var.operator_config", "var.operator_package", "local.operator_config_json"):
        assert config_ref not in cloud_init_call, f"{config_ref} in custom_data would replace the VM on every change"


def test_refresh_writes_the_terraform_config_then_only_restarts_on_change(tmp_path: Path) -> None:
    first = _run(tmp_path, _user_data("repo-runners"))
    assert first.returncode == 0, first.stderr
    assert "changed: operator.json operator-package.env" in first.stdout
    written = json.loads((tmp_path / "etc/operator.json").read_text())
    assert written == json.loads(scaler_locals_for_example("repo-runners")["operator_config_json"])
    assert "OPERATOR_SHA256='" + "0" * 64 + "'" in (tmp_path / "etc/operator-package.env").read_text()
    (tmp_path / "restarted").unlink()

    again = _run(tmp_path, _user_data("repo-runners"))
    assert again.returncode == 0 and again.stdout.strip() == "unchanged"
    assert not (tmp_path / "restarted").exists()

    bigger = _run(tmp_path, _user_data("repo-runners", pool_max_instances=42))
    assert bigger.returncode == 0 and bigger.stdout.strip() == "changed: operator.json", bigger.stderr
    assert json.loads((tmp_path / "etc/operator.json").read_text())["pool"]["max"] == 42
    assert (tmp_path / "restarted").exists()


@pytest.mark.parametrize("broken", ["not base64!", base64.b64encode(b"{}").decode(),
                                    base64.b64encode(json.dumps({"operator_config_b64": "e30=", "operator_package": {
                                        "url": "http://insecure", "sha256": "0" * 64}}).encode()).decode()])
def test_broken_user_data_keeps_the_last_good_config(tmp_path: Path, broken: str) -> None:
    assert _run(tmp_path, _user_data("repo-runners")).returncode == 0
    before = (tmp_path / "etc/operator.json").read_bytes()
    result = _run(tmp_path, broken)
    assert result.returncode != 0
    assert (tmp_path / "etc/operator.json").read_bytes() == before


def test_install_operator_keeps_a_binary_that_already_has_the_pinned_checksum(tmp_path: Path) -> None:
    binary = tmp_path / "operator"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    sha = subprocess.run(["sha256sum", str(binary)], capture_output=True, text=True, check=True).stdout.split()[0]
    env_file = tmp_path / "operator-package.env"
    env_file.write_text(f"OPERATOR_URL='https://example.invalid/operator'\nOPERATOR_SHA256='{sha}'\n")
    env = {**os.environ, "OPERATOR_BIN": str(binary), "INSTALL_DEADLINE": "1", "DOWNLOAD_RETRIES": "0"}
    ok = subprocess.run(["bash", str(INSTALL), str(env_file)], env=env, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "already installed" in ok.stderr
    env_file.write_text("OPERATOR_URL='https://127.0.0.1:9/operator'\nOPERATOR_SHA256='" + "1" * 64 + "'\n")
    failed = subprocess.run(["bash", str(INSTALL), str(env_file)], env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0, "an unreachable or mismatching package must fail the start (the unit retries)"
