"""Render cloud-init/runner.yaml and cloud-init/scaler.yaml as Terraform's
templatefile() would, for the checks that cannot run terraform here.

The templates use three expression forms only — `${name}`, `${name["key"]}` and
`${join("sep", name)}` — and this renderer refuses anything else rather than guess.
The variables are built the way terraform/main.tf and terraform/modules/scaler/main.tf
build them (every file of vm/ base64-encoded, and so on); test_cloud_init.py checks
that those calls still pass exactly these names.

As a script: `python tests/static/cloudinit.py OUT_DIR` writes runner.yaml and
scaler.yaml rendered with example values, for `cloud-init schema --config-file`."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VM_DIR = REPO_ROOT / "vm"
CLOUD_INIT = REPO_ROOT / "cloud-init"

_EXPR = re.compile(r"(?<!\$)\$\{([^}]*)\}")
_DIRECTIVE = re.compile(r"(?<!%)%\{")


class Unsupported(Exception):
    """The template uses an expression this renderer does not model."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def vm_files() -> dict[str, str]:
    """fileset("vm", "*") -> filebase64(), as terraform/main.tf builds `vm_files`."""
    return {p.name: _b64(p.read_bytes()) for p in sorted(VM_DIR.iterdir()) if p.is_file()}


def runner_variables(scaler_api_url: str = "http://10.70.16.4:8080") -> dict[str, Any]:
    return {
        "scaler_api_url": scaler_api_url,
        "vm_files": vm_files(),
    }


def scaler_variables() -> dict[str, Any]:
    """The files terraform/modules/scaler/main.tf passes (no configuration: that is user data)."""
    scaler = VM_DIR / "scaler"
    return {
        "operator_service": _b64((scaler / "operator.service").read_bytes()),
        "install_operator": _b64((scaler / "install-operator.sh").read_bytes()),
        "refresh_config": _b64((scaler / "refresh-operator-config.sh").read_bytes()),
        "config_service": _b64((scaler / "vmss-github-runner-config.service").read_bytes()),
        "config_timer": _b64((scaler / "vmss-github-runner-config.timer").read_bytes()),
    }


def scaler_user_data(config: dict[str, Any] | None = None,
                     url: str = "https://github.com/vmss-github-runner/vmss-github-runner/releases/download/v0.1.0/operator",
                     sha256: str = "0" * 64) -> str:
    """The scaler's user_data as terraform/modules/scaler/main.tf builds it (base64 of JSON)."""
    config = config or {"github": {"api_url": "https://api.github.com"}}
    envelope = {"operator_config_b64": _b64(json.dumps(config).encode()),
                "operator_package": {"url": url, "sha256": sha256}}
    return _b64(json.dumps(envelope).encode())


def _evaluate(expr: str, variables: dict[str, Any]) -> str:
    expr = expr.strip()
    if m := re.fullmatch(r"([a-z_][a-z0-9_]*)", expr):
        value = variables[m.group(1)]
    elif m := re.fullmatch(r'([a-z_][a-z0-9_]*)\["([^"]+)"\]', expr):
        value = variables[m.group(1)][m.group(2)]
    elif m := re.fullmatch(r'join\("([^"]*)",\s*([a-z_][a-z0-9_]*)\)', expr):
        value = m.group(1).join(variables[m.group(2)])
    else:
        raise Unsupported(f"${{{expr}}}")
    if not isinstance(value, str):
        raise Unsupported(f"${{{expr}}} is not a string")
    return value


def referenced(template: Path) -> set[str]:
    """Names of the variables a template uses."""
    names = set()
    for expr in _EXPR.findall(template.read_text(encoding="utf-8")):
        without_strings = re.sub(r'"[^"]*"', "", expr)
        names.update(n for n in re.findall(r"[a-z_][a-z0-9_]*", without_strings) if n != "join")
    return names


def render(template: Path, variables: dict[str, Any]) -> str:
    text = template.read_text(encoding="utf-8")
    if _DIRECTIVE.search(text):
        raise Unsupported(f"{template}: template directives (%{{...}}) are not modelled")
    out = _EXPR.sub(lambda m: _evaluate(m.group(1), variables), text)
    return out.replace("$${", "${").replace("%%{", "%{")


def render_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, variables in (("runner.yaml", runner_variables()), ("scaler.yaml", scaler_variables())):
        path = out_dir / name
        path.write_text(render(CLOUD_INIT / name, variables), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for rendered in render_all(Path(sys.argv[1])):
        print(rendered)
