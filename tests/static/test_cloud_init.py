"""The cloud-init documents are Terraform templates fed from vm/: check that the
rendered documents carry exactly the repository's scripts, that Terraform passes the
variables the templates use, and that the runner's document fits Azure's custom data
limit. (`scripts/check-cloud-init.sh` runs cloud-init's own schema check on them.)"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import yaml

import cloudinit

RUNNER_YAML = cloudinit.CLOUD_INIT / "runner.yaml"
SCALER_YAML = cloudinit.CLOUD_INIT / "scaler.yaml"
# Azure: customData is at most 65,535 bytes once base64-encoded... keep a margin.
CUSTOM_DATA_LIMIT = 64 * 1024


def _files(document: dict) -> dict[str, bytes]:
    out = {}
    for entry in document["write_files"]:
        content = entry.get("content", "")
        out[entry["path"]] = base64.b64decode(content) if entry.get("encoding") == "b64" else content.encode()
    return out


def test_runner_document_writes_every_vm_script_byte_for_byte() -> None:
    document = yaml.safe_load(cloudinit.render(RUNNER_YAML, cloudinit.runner_variables()))
    written = _files(document)
    for path in sorted(cloudinit.VM_DIR.iterdir()):
        if not path.is_file():
            continue
        target = (f"/etc/systemd/system/{path.name}" if path.suffix == ".service"
                  else f"/opt/vmss-github-runner/{path.name}")
        assert written.get(target) == path.read_bytes(), f"{target} differs from vm/{path.name} or is missing"
    assert "SCALER_API_URL=http://10.70.16.4:8080" in written["/etc/vmss-github-runner/runner.env"].decode()


def test_runner_document_enables_and_starts_the_boot_unit_without_blocking_cloud_init() -> None:
    document = yaml.safe_load(cloudinit.render(RUNNER_YAML, cloudinit.runner_variables()))
    assert ["systemctl", "enable", "--now", "--no-block", "vmss-github-runner.service"] in document["runcmd"]


def test_scaler_document_installs_the_hardened_unit_and_the_checked_binary() -> None:
    document = yaml.safe_load(cloudinit.render(SCALER_YAML, cloudinit.scaler_variables()))
    written = _files(document)
    unit = written["/etc/systemd/system/vmss-github-runner-operator.service"].decode()
    for line in ("User=vmss-operator", "Restart=on-failure", "ProtectSystem=strict", "ProtectHome=yes",
                 "NoNewPrivileges=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "StateDirectory=",
                 # connections are descriptors; soft = hard, so the binary needs no setrlimit (issue 11)
                 "LimitNOFILE=65536",
                 # installed after the network is up, retried until it succeeds (finding 13)
                 "ExecStartPre=+/usr/local/sbin/install-operator", "StartLimitIntervalSec=0",
                 "After=network-online.target vmss-github-runner-config.service"):
        assert line in unit, f"operator.service lacks {line!r}"
    scaler = cloudinit.VM_DIR / "scaler"
    assert written["/usr/local/sbin/install-operator"] == (scaler / "install-operator.sh").read_bytes()
    assert written["/usr/local/sbin/refresh-operator-config"] == (scaler / "refresh-operator-config.sh").read_bytes()
    assert "sha256sum --check" in written["/usr/local/sbin/install-operator"].decode()
    assert any(u.get("name") == "vmss-operator" and u.get("system") for u in document["users"] if isinstance(u, dict))
    # Neither the config nor the package pin is in custom_data (ForceNew on a VM).
    assert not any(path.startswith("/etc/vmss-github-runner/") for path in written)
    assert ["systemctl", "start", "--no-block", "vmss-github-runner-config.timer",
            "vmss-github-runner-operator.service"] in document["runcmd"]


def test_rendered_runner_custom_data_fits_azure_limit() -> None:
    rendered = cloudinit.render(RUNNER_YAML, cloudinit.runner_variables()).encode()
    assert len(base64.b64encode(rendered)) < CUSTOM_DATA_LIMIT


def _templatefile_names(tf: Path, template: str) -> set[str]:
    text = tf.read_text(encoding="utf-8")
    m = re.search(r'templatefile\("[^"]*' + re.escape(template) + r'",\s*\{(.*?)\n\s*\}\)', text, re.S)
    assert m, f"{tf} does not render {template}"
    return set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", m.group(1), re.M))


def test_terraform_passes_exactly_the_variables_each_template_uses() -> None:
    root = cloudinit.REPO_ROOT / "terraform"
    assert _templatefile_names(root / "main.tf", "cloud-init/runner.yaml") == cloudinit.referenced(RUNNER_YAML)
    assert _templatefile_names(root / "modules/scaler/main.tf", "cloud-init/scaler.yaml") == cloudinit.referenced(SCALER_YAML)
    assert set(cloudinit.runner_variables()) == cloudinit.referenced(RUNNER_YAML)
    assert set(cloudinit.scaler_variables()) == cloudinit.referenced(SCALER_YAML)


def test_templates_use_only_the_modelled_expressions() -> None:
    cloudinit.render(RUNNER_YAML, cloudinit.runner_variables())
    cloudinit.render(SCALER_YAML, cloudinit.scaler_variables())
