"""The image bake step runs here, into a temporary root laid out the way Packer
leaves the build VM: each template's file provisioner is applied with Packer's
upload rules, then packer/scripts/install-vm-scripts.sh runs with DESTDIR set to
that root (the runner download is replaced by a stub: no network here). A script
that exits non-zero, or an upload Packer would refuse, fails this test; the
result must hold every file cloud-init/runner.yaml writes, with the same modes,
so a baked image and a fresh boot cannot drift."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

from conftest import REPO_ROOT

TEMPLATES = {"minimal": REPO_ROOT / "packer/minimal/minimal.pkr.hcl", "full": REPO_ROOT / "packer/full/full.pkr.hcl"}
pytestmark = pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl (systemd) for --root enable")


def _q(value):
    if isinstance(value, list):
        return [_q(v) for v in value]
    return value[1:-1] if isinstance(value, str) and value.startswith('"') and value.endswith('"') else value


def _provisioners(template: Path) -> list[tuple[str, dict]]:
    build = hcl2.loads(template.read_text())["build"][0]
    return [(_q(kind), {k: _q(v) for k, v in body.items()})
            for p in build["provisioner"] for kind, body in p.items()]


class UploadRefused(Exception):
    pass


def packer_upload(template: Path, source: str, destination: str, root: Path) -> None:
    """Packer's file provisioner for a directory: `dir` (no trailing slash) lands
    in DEST/dir, which Packer creates; `dir/` puts the contents into DEST. Either
    way DEST must already exist on the remote (hashicorp/packer#3719)."""
    local = Path(source.replace("${path.root}", str(template.parent)))
    if not local.is_dir():
        raise UploadRefused(f"{source}: not a directory")
    remote = root / destination.lstrip("/")
    if not remote.is_dir():
        raise UploadRefused(f"{template.parent.name}: upload of {source} to {destination}: "
                            f"destination {destination} does not exist on the build VM")
    target = remote if source.endswith("/") else remote / local.name
    shutil.copytree(local, target, dirs_exist_ok=True)


def _runner_yaml_files() -> dict[str, str]:
    doc = yaml.safe_load((REPO_ROOT / "cloud-init/runner.yaml").read_text())
    return {f["path"]: f["permissions"] for f in doc["write_files"] if not f["path"].startswith("/etc/vmss-github-runner/")}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_bake_step_installs_what_cloud_init_writes(name: str, tmp_path: Path) -> None:
    template = TEMPLATES[name]
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)  # what the build VM has before the upload
    stub = tmp_path / "install-runner-stub.sh"
    marker = tmp_path / "runner-installed"
    stub.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    stub.chmod(0o755)

    ran = []
    for kind, body in _provisioners(template):
        if kind == "file":
            packer_upload(template, body["source"], body["destination"], root)
        elif kind == "shell":
            for script in body.get("scripts", []):
                path = Path(script.replace("${path.root}", str(template.parent))).resolve()
                if path.name != "install-vm-scripts.sh":
                    continue  # install-docker/deprovision need apt and waagent
                env = {**os.environ, "DESTDIR": str(root), "RUNNER_INSTALLER": str(stub)}
                result = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60)
                assert result.returncode == 0, (
                    f"{name}: {path.name} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
                ran.append(path.name)
    assert ran == ["install-vm-scripts.sh"], f"{name}: the bake step did not run: {ran}"
    assert marker.exists(), "install-vm-scripts.sh must install the runner agent"

    for path, mode in _runner_yaml_files().items():
        baked = root / path.lstrip("/")
        assert baked.is_file(), f"{name}: cloud-init writes {path}, the image lacks it"
        assert stat.S_IMODE(baked.stat().st_mode) == int(mode, 8), f"{name}: {path} mode differs from runner.yaml"
        assert baked.read_bytes() == (REPO_ROOT / "vm" / baked.name).read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/vmss-github-runner.service"
    assert wants.is_symlink(), f"{name}: the boot unit is not enabled"
    assert not (root / "opt/vmss-github-runner/scaler").exists(), "the scaler's files do not belong on a runner"


def test_upload_emulation_refuses_a_missing_destination(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    with pytest.raises(UploadRefused):
        packer_upload(TEMPLATES["minimal"], "${path.root}/../../vm/", "/tmp/vm", tmp_path)
    packer_upload(TEMPLATES["minimal"], "${path.root}/../../vm", "/tmp", tmp_path)
    assert (tmp_path / "tmp/vm/boot.sh").is_file()


def test_a_failing_bake_script_fails_the_test(tmp_path: Path) -> None:
    """The current loop must skip directories such as vm/scaler/: the script
    exits 0 on the real vm/ tree, and a non-zero exit is what the test looks at."""
    root = tmp_path / "root"
    (root / "tmp/vm").mkdir(parents=True)
    env = {**os.environ, "DESTDIR": str(root), "RUNNER_INSTALLER": "false"}
    shutil.copytree(REPO_ROOT / "vm", root / "tmp/vm", dirs_exist_ok=True)
    result = subprocess.run(["bash", str(REPO_ROOT / "packer/scripts/install-vm-scripts.sh")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, "a failing runner install must fail the bake step"
