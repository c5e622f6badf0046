"""The Terraform README tables are generated, never hand-kept: they must match
what scripts/gen-terraform-docs.py renders from the .tf files now."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_terraform_readme_tables_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen-terraform-docs.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_module_has_a_readme_with_generated_tables() -> None:
    for readme in [REPO_ROOT / "terraform" / "README.md",
                   *sorted((REPO_ROOT / "terraform").glob("modules/*/README.md")),
                   *sorted((REPO_ROOT / "terraform").glob("examples/*/README.md"))]:
        text = readme.read_text(encoding="utf-8")
        assert "<!-- BEGIN_TF_DOCS -->" in text and "## Inputs" in text, readme
