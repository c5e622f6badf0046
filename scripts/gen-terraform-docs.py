#!/usr/bin/env python3
"""Generate the Inputs/Outputs tables of every Terraform module's README.md.

terraform-docs cannot be installed on the development machines, so this script
reads the .tf files with python-hcl2 and writes the tables between the markers
<!-- BEGIN_TF_DOCS --> and <!-- END_TF_DOCS -->. Modules: terraform/,
terraform/modules/*, terraform/examples/*.

  scripts/gen-terraform-docs.py          rewrite stale tables
  scripts/gen-terraform-docs.py --check  exit 1 if any table is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hcl2
from hcl2.utils import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = REPO_ROOT / "terraform"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"
OPTIONS = SerializationOptions(strip_string_quotes=True, preserve_heredocs=False, with_comments=False,
                               explicit_blocks=False)


def module_dirs() -> list[Path]:
    dirs = [TERRAFORM]
    for group in ("modules", "examples"):
        dirs += sorted(p for p in (TERRAFORM / group).iterdir() if p.is_dir())
    return dirs


def _expr(value: object) -> str:
    """HCL-ish rendering of a parsed value for a table cell."""
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_expr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_expr(v)}" for k, v in value.items()) + "}"
    return str(value)


def _type(value: object) -> str:
    if isinstance(value, str):
        return value[2:-1] if value.startswith("${") and value.endswith("}") else value
    return _expr(value)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    text = _cell(text)
    return f"`{text}`" if "`" not in text else f"<code>{text}</code>"


def load(module_dir: Path) -> tuple[list[dict], list[dict]]:
    variables, outputs = [], []
    for path in sorted(module_dir.glob("*.tf")):
        data = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=OPTIONS)
        for block in data.get("variable", []):
            for name, body in block.items():
                variables.append({"name": name.strip('"'), **body})
        for block in data.get("output", []):
            for name, body in block.items():
                outputs.append({"name": name.strip('"'), **body})
    return variables, outputs


def render(module_dir: Path) -> str:
    variables, outputs = load(module_dir)
    required = sorted((v for v in variables if "default" not in v), key=lambda v: v["name"])
    optional = sorted((v for v in variables if "default" in v), key=lambda v: v["name"])
    lines = [BEGIN, "", "## Inputs", ""]
    if variables:
        lines += ["| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
        for v in required + optional:
            default = _code(_expr(v["default"])) if "default" in v else "n/a"
            sensitive = " (sensitive)" if v.get("sensitive") is True else ""
            lines.append(
                f"| `{v['name']}` | {_cell(str(v.get('description', '')))}{sensitive} | {_code(_type(v.get('type', 'any')))} "
                f"| {default} | {'yes' if 'default' not in v else 'no'} |"
            )
    else:
        lines.append("No inputs.")
    lines += ["", "## Outputs", ""]
    if outputs:
        lines += ["| Name | Description |", "|------|-------------|"]
        for o in sorted(outputs, key=lambda o: o["name"]):
            lines.append(f"| `{o['name']}` | {_cell(str(o.get('description', '')))} |")
    else:
        lines.append("No outputs.")
    lines += ["", END]
    return "\n".join(lines)


def updated_readme(module_dir: Path) -> tuple[Path, str, str]:
    readme = module_dir / "README.md"
    current = readme.read_text(encoding="utf-8") if readme.exists() else f"# {module_dir.name}\n\n{BEGIN}\n{END}\n"
    if BEGIN not in current or END not in current:
        current = current.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return readme, current, head + render(module_dir) + tail


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for module_dir in module_dirs():
        readme, current, wanted = updated_readme(module_dir)
        if current != wanted or not readme.exists():
            stale.append(readme.relative_to(REPO_ROOT))
            if not check:
                readme.write_text(wanted, encoding="utf-8")
    if check and stale:
        print("Terraform README tables are stale: " + ", ".join(map(str, stale)), file=sys.stderr)
        print("run `just generate` (or: .tools/venv/bin/python scripts/gen-terraform-docs.py)", file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
