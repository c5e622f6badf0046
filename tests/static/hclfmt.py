"""A partial re-implementation of `terraform fmt`'s layout rules, for a machine
without terraform. It checks what fmt would change most often, following
hclwrite's formatter: in a run of consecutive lines that each hold a complete
`name = value` (no net open bracket), the `=` signs line up one space after the
longest name; any other line ends the run. Also: two-space indentation, no
tabs, no trailing whitespace, exactly one final newline. `terraform fmt -check`
itself runs in .github/workflows/ci.yml."""

from __future__ import annotations

import re
from pathlib import Path

ASSIGN = re.compile(r'^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_-]*|"[^"]*")(?P<pad> *)=(?![=>])(?P<rest>.*)$')
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
HEREDOC = re.compile(r"<<-?([A-Za-z][A-Za-z0-9_-]*)\s*$")


def _code(line: str) -> str:
    """The line without string contents and without a trailing comment."""
    code = STRING.sub('""', line)
    for marker in ("#", "//"):
        if marker in code:
            code = code[: code.index(marker)]
    return code


def _net_brackets(code: str) -> int:
    return sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")


def problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    out: list[str] = []
    if "\t" in text:
        out.append(f"{path}: contains a tab")
    if not text.endswith("\n") or text.endswith("\n\n"):
        out.append(f"{path}: must end with exactly one newline")
    run: list[tuple[int, re.Match]] = []
    heredoc_end: str | None = None

    def flush() -> None:
        if run:
            width = max(len(m.group("key")) for _, m in run)
            for lineno, m in run:
                want = " " * (width - len(m.group("key")) + 1)
                if m.group("pad") != want:
                    out.append(f"{path}:{lineno}: '=' after `{m.group('key')}` is not aligned as terraform fmt would align it")
        run.clear()

    for lineno, line in enumerate(text.split("\n"), start=1):
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        if line.rstrip() != line:
            out.append(f"{path}:{lineno}: trailing whitespace")
        indent = len(line) - len(line.lstrip(" "))
        if line.strip() and indent % 2:
            out.append(f"{path}:{lineno}: indentation is not a multiple of two spaces")
        code = _code(line)
        m = ASSIGN.match(line)
        heredoc = HEREDOC.search(code)
        if m and (heredoc or _net_brackets(_code(m.group("rest"))) == 0):
            run.append((lineno, m))
        else:
            flush()
        if heredoc:
            heredoc_end = heredoc.group(1)
    flush()
    return out


def fix(path: Path) -> bool:
    """Re-align `=` runs in place (the one fmt rule this module can repair)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    changed = False
    run: list[int] = []
    heredoc_end: str | None = None

    def flush() -> None:
        nonlocal changed
        if run:
            matches = {i: ASSIGN.match(lines[i]) for i in run}
            width = max(len(m.group("key")) for m in matches.values())
            for i, m in matches.items():
                new = f"{m.group('indent')}{m.group('key')}{' ' * (width - len(m.group('key')) + 1)}={m.group('rest')}"
                if new != lines[i]:
                    lines[i] = new
                    changed = True
        run.clear()

    for i, line in enumerate(lines):
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        code = _code(line)
        m = ASSIGN.match(line)
        heredoc = HEREDOC.search(code)
        if m and (heredoc or _net_brackets(_code(m.group("rest"))) == 0):
            run.append(i)
        else:
            flush()
        if heredoc:
            heredoc_end = heredoc.group(1)
    flush()
    if changed:
        path.write_text("\n".join(lines), encoding="utf-8")
    return changed


if __name__ == "__main__":
    import sys

    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("terraform").rglob("*.tf*"))
    for p in paths:
        if p.suffix in (".tf", ".hcl") and fix(p):
            print(f"aligned {p}")
