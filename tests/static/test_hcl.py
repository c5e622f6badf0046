"""Every Terraform and Packer file parses with python-hcl2, and .tf files keep
the layout `terraform fmt` would give them (see hclfmt.py for what is checked)."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest

from conftest import REPO_ROOT
from hclfmt import problems

SKIP_DIRS = {".git", ".tools", "target", "node_modules", ".terraform"}
HCL_FILES = sorted(
    p for pattern in ("*.tf", "*.tftest.hcl", "*.pkr.hcl", "*.tfvars")
    for p in REPO_ROOT.rglob(pattern)
    if not SKIP_DIRS.intersection(p.relative_to(REPO_ROOT).parts)
)


def test_there_are_hcl_files_to_check() -> None:
    assert any(p.suffix == ".tf" for p in HCL_FILES)
    assert any(p.name.endswith(".tftest.hcl") for p in HCL_FILES)


@pytest.mark.parametrize("path", HCL_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_file_parses_as_hcl2(path: Path) -> None:
    hcl2.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [p for p in HCL_FILES if p.suffix in (".tf", ".hcl")],
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_file_is_laid_out_as_terraform_fmt_would(path: Path) -> None:
    found = problems(path)
    assert not found, "\n".join(found) + "\nfix: .tools/venv/bin/python tests/static/hclfmt.py (aligns '='), then terraform fmt"
