#!/usr/bin/env python3
"""Extract the argument/block schema of the azurerm resources and data sources
this repository's Terraform uses from terraform-provider-azurerm's Go source at
one tag, into contracts/terraform-azurerm/schema-<tag>.jsonl (JSON Lines: the provenance
first, then one line per resource or data source type; not `.json`, which
tests/contract's integrity test reserves for copied API descriptions).

    python3 scripts/extract-azurerm-schema.py PROVIDER_GIT_DIR v4.46.0

PROVIDER_GIT_DIR is a clone (or bare mirror) of hashicorp/terraform-provider-azurerm.
The tag's `internal/` tree and the vendored go-azure-helpers `commonschema` are
exported with `git archive`; nothing else is read. No Go toolchain is needed: a
small reader follows the schema literals the provider writes
(`map[string]*pluginsdk.Schema{...}`, `&pluginsdk.Schema{...}`,
`Elem: &pluginsdk.Resource{Schema: ...}`), the helper functions they call
(`commonschema.Location()`, `VirtualMachineScaleSetOSDiskSchema()`, ...; boolean
parameters are substituted, e.g. `base64.OptionalSchema(true)` is ForceNew), the
keys added later by `s["key"] = ...` (the 4.x feature-flag blocks), and typed
resources' `Arguments()`/`Attributes()`. An entry it cannot resolve is recorded
with "unresolved": true and treated as an optional attribute by the test, so the
contract never claims more than the source shows.

The resource list is the set of types used under terraform/ (found with the same
parser as tests/static/tfrefs.py) plus EXTRA_TYPES; rerun after adding one.
Not run in CI (it needs the provider repository); the output is committed and
checked by tests/static/test_provider_schema.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTRA_TYPES: set[tuple[str, str]] = set()

# --------------------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<lc>//[^\n]*)|(?P<bc>/\*.*?\*/)|(?P<raw>`[^`]*`)|(?P<str>"(?:\\.|[^"\\])*")"""
    r"""|(?P<rune>'(?:\\.|[^'\\])+')|(?P<num>\d[\w.]*)|(?P<id>[A-Za-z_]\w*)|(?P<op>:=|\.\.\.|&&|\|\||==|!=|<=|>=|[^\s\w])""",
    re.S,
)


@dataclass
class Group:
    open: str
    items: list  # tokens (str) and Groups

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.open}…"


def lex(text: str) -> list[str]:
    """Go tokens, with the semicolons Go inserts at line ends (so statements split)."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind in ("ws", "bc"):
            if "\n" in m.group(0) and out and _ends_statement(out[-1]):
                out.append(";")
            continue
        if kind == "lc":
            continue
        out.append(m.group(0))
    return out


def _ends_statement(tok: str) -> bool:
    return (tok in (")", "]", "}", "++", "--", "return", "break", "continue", "fallthrough")
            or bool(re.fullmatch(r"[A-Za-z_]\w*|\d[\w.]*", tok)) or tok[0] in "\"`'")


def statement(items: list, start: int) -> list:
    """Tokens from start up to the next `;` at this level."""
    out = []
    for it in items[start:]:
        if it == ";":
            break
        out.append(it)
    return out


def group(tokens: list[str]) -> list:
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[tuple[str, list]] = [("", [])]
    for tok in tokens:
        if tok in pairs:
            stack.append((tok, []))
        elif tok in (")", "]", "}"):
            open_, items = stack.pop()
            stack[-1][1].append(Group(open_, items))
        else:
            stack[-1][1].append(tok)
    return stack[0][1]


def split_commas(items: list) -> list[list]:
    parts, cur = [], []
    for it in items:
        if it == ",":
            parts.append(cur)
            cur = []
        else:
            cur.append(it)
    if cur:
        parts.append(cur)
    return parts


def key_value(part: list) -> tuple[list, list] | None:
    for i, it in enumerate(part):
        if it == ":":
            return part[:i], part[i + 1:]
    return None


# --------------------------------------------------------------------------- functions

@dataclass
class Func:
    name: str
    receiver: str | None
    params: list[str]
    body: Group
    file: Path


def parse_funcs(path: Path) -> list[Func]:
    items = group(lex(path.read_text(encoding="utf-8", errors="replace")))
    funcs = []
    i = 0
    while i < len(items):
        if items[i] == "func":
            j = i + 1
            receiver = None
            if isinstance(items[j], Group) and items[j].open == "(":
                rtoks = [t for t in items[j].items if isinstance(t, str) and t != "*"]
                receiver = rtoks[-1] if rtoks else None
                j += 1
            if j < len(items) and isinstance(items[j], str) and re.fullmatch(r"[A-Za-z_]\w*", items[j]):
                name = items[j]
                params_group = items[j + 1] if j + 1 < len(items) else None
                params = []
                if isinstance(params_group, Group):
                    for part in split_commas(params_group.items):
                        if part and isinstance(part[0], str):
                            params.append(part[0])
                k = j + 2
                while k < len(items) and not (isinstance(items[k], Group) and items[k].open == "{"):
                    k += 1
                if k < len(items):
                    funcs.append(Func(name, receiver, params, items[k], path))
                    i = k
        i += 1
    return funcs


class Source:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.funcs: dict[str, list[Func]] = {}
        self.methods: dict[tuple[str, str], list[Func]] = {}
        for path in [p for d in ("internal", "helpers", "vendor") for p in (root / d).rglob("*.go")]:
            if path.name.endswith("_test.go"):
                continue
            for f in parse_funcs(path):
                if f.receiver:
                    self.methods.setdefault((f.receiver, f.name), []).append(f)
                else:
                    self.funcs.setdefault(f.name, []).append(f)

    def method(self, receiver: str, name: str, near: Path) -> Func | None:
        cands = self.methods.get((receiver, name), [])
        same_dir = [f for f in cands if f.file.parent == near.parent]
        return (same_dir or cands or [None])[0]

    def find_func(self, pkg: str | None, name: str, near: Path) -> Func | None:
        cands = self.funcs.get(name, [])
        if not cands:
            return None
        if pkg:
            same_pkg = [f for f in cands if f.file.parent.name == pkg]
            if same_pkg:
                cands = same_pkg
        else:
            same_dir = [f for f in cands if f.file.parent == near.parent]
            if same_dir:
                cands = same_dir
        return cands[0]


# --------------------------------------------------------------------------- schema reading

class Reader:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.unresolved: list[str] = []

    # A value is a list of tokens/groups. Returns a schema entry dict, or None.
    def schema_value(self, value: list, ctx: Func, env: dict[str, str], where: str) -> dict:
        toks = [v for v in value if v != "&"]
        if toks and isinstance(toks[0], Group) and toks[0].open == "{":
            return self.schema_literal(toks[0], ctx, env, where)
        # pluginsdk.Schema{...} / schema.Schema{...}
        if len(toks) >= 4 and toks[1] == "." and toks[2] == "Schema" and isinstance(toks[3], Group):
            return self.schema_literal(toks[3], ctx, env, where)
        call = self._call(toks)
        if call:
            pkg, name, args = call
            return self.schema_from_call(pkg, name, args, ctx, env, where)
        if len(toks) == 1 and isinstance(toks[0], str):
            # A variable: look for `name := &pluginsdk.Schema{` in the function.
            found = self._assigned(ctx.body, toks[0])
            if found is not None:
                return self.schema_value(found, ctx, env, where)
        self.unresolved.append(where)
        return {"unresolved": True, "optional": True}

    def _call(self, toks: list) -> tuple[str | None, str, list] | None:
        if len(toks) == 2 and isinstance(toks[0], str) and isinstance(toks[1], Group) and toks[1].open == "(":
            return None, toks[0], toks[1].items
        if (len(toks) == 4 and isinstance(toks[0], str) and toks[1] == "." and isinstance(toks[2], str)
                and isinstance(toks[3], Group) and toks[3].open == "("):
            return toks[0], toks[2], toks[3].items
        return None

    def _assigned(self, body: Group, var: str) -> list | None:
        items = body.items
        for i in range(len(items) - 1):
            if items[i] == var and items[i + 1] in (":=", "=") and (i == 0 or items[i - 1] in (";", "var")):
                return statement(items, i + 2)
            if isinstance(items[i], Group) and items[i].open == "{":
                inner = self._assigned(items[i], var)
                if inner is not None:
                    return inner
        return None

    def schema_from_call(self, pkg, name, args, ctx: Func, env, where) -> dict:
        func = self.source.find_func(pkg, name, ctx.file)
        if func is None:
            self.unresolved.append(f"{where} ({pkg + '.' if pkg else ''}{name})")
            return {"unresolved": True, "optional": True}
        call_env = {}
        for param, arg in zip(func.params, split_commas(args)):
            if len(arg) == 1 and isinstance(arg[0], str):
                call_env[param] = env.get(arg[0], arg[0])
        ret = self._return_value(func.body)
        if ret is None:
            self.unresolved.append(f"{where} ({name}: no return)")
            return {"unresolved": True, "optional": True}
        entry = self.schema_value(ret, func, call_env, where)
        return entry

    def _return_value(self, body: Group) -> list | None:
        """The value of the last top-level `return` of a function body."""
        value = None
        for i, it in enumerate(body.items):
            if it == "return":
                value = statement(body.items, i + 1)
        return value

    def schema_literal(self, lit: Group, ctx: Func, env: dict[str, str], where: str) -> dict:
        fields = {}
        for part in split_commas(lit.items):
            kv = key_value(part)
            if kv and len(kv[0]) == 1 and isinstance(kv[0][0], str):
                fields[kv[0][0]] = kv[1]

        def flag(name: str) -> bool:
            v = fields.get(name)
            if not v:
                return False
            tok = v[0] if len(v) == 1 and isinstance(v[0], str) else None
            tok = env.get(tok, tok) if tok else None
            return tok == "true"

        entry: dict[str, Any] = {}
        for name in ("Required", "Optional", "Computed", "ForceNew"):
            if flag(name):
                entry[name.lower() if name != "ForceNew" else "force_new"] = True
        if "Deprecated" in fields:
            entry["deprecated"] = True
        type_ = fields.get("Type")
        if type_:
            entry["type"] = str(type_[-1]).replace("Type", "").lower()
        for name in ("MaxItems", "MinItems"):
            v = fields.get(name)
            if v and len(v) == 1 and isinstance(v[0], str) and v[0].isdigit():
                entry[name.lower().replace("items", "_items")] = int(v[0])
        config_mode = fields.get("ConfigMode")
        if config_mode and "SchemaConfigModeAttr" in [str(t) for t in config_mode]:
            entry["config_mode_attr"] = True
        elem = fields.get("Elem")
        if elem:
            nested = self.resource_value(elem, ctx, env, where)
            if nested is not None:
                entry["block"] = nested
        return entry

    def resource_value(self, value: list, ctx: Func, env, where) -> dict | None:
        """Elem: &pluginsdk.Resource{Schema: ...} (a nested block) or None (a primitive Elem)."""
        toks = [v for v in value if v != "&"]
        if len(toks) >= 4 and toks[1] == "." and toks[2] == "Resource" and isinstance(toks[3], Group):
            for part in split_commas(toks[3].items):
                kv = key_value(part)
                if kv and kv[0] == ["Schema"]:
                    return self.schema_map_value(kv[1], ctx, env, where)
            return {}
        call = self._call(toks)
        if call:
            func = self.source.find_func(call[0], call[1], ctx.file)
            if func:
                ret = self._return_value(func.body)
                if ret:
                    res = self.resource_value(ret, func, {}, where)
                    if res is not None:
                        return res
                    return None
            self.unresolved.append(f"{where}.Elem")
            return {"unresolved": True}
        return None

    def schema_map_value(self, value: list, ctx: Func, env, where) -> dict:
        toks = [v for v in value if v != "&"]
        if toks and isinstance(toks[-1], Group) and toks[-1].open == "{" and "map" in [str(t) for t in toks[:1]]:
            entries = self.schema_map(toks[-1], ctx, env, where)
            return entries
        call = self._call(toks)
        if call:
            func = self.source.find_func(call[0], call[1], ctx.file)
            if func:
                return self.schema_map_of_func(func, where)
        if len(toks) == 1 and isinstance(toks[0], str):
            found = self._assigned(ctx.body, toks[0])
            if found is not None:
                m = self.schema_map_value(found, ctx, env, where)
                m.update(self._index_assignments(ctx.body, toks[0], ctx, env, where))
                return m
        self.unresolved.append(f"{where} (schema map)")
        return {"__unresolved__": {"unresolved": True}}

    def schema_map_of_func(self, func: Func, where: str) -> dict:
        ret = self._return_value(func.body)
        if ret is None:
            return {"__unresolved__": {"unresolved": True}}
        return self.schema_map_value(ret, func, {}, where)

    def schema_map(self, lit: Group, ctx: Func, env, where) -> dict:
        out = {}
        for part in split_commas(lit.items):
            kv = key_value(part)
            if not kv or len(kv[0]) != 1 or not str(kv[0][0]).startswith('"'):
                continue
            key = json.loads(kv[0][0])
            out[key] = self.schema_value(kv[1], ctx, env, f"{where}.{key}")
        return out

    def _index_assignments(self, body: Group, var: str, ctx, env, where) -> dict:
        """`var["key"] = value` anywhere in a body (also inside if-blocks)."""
        out = {}
        items = body.items
        for i, it in enumerate(items):
            if isinstance(it, Group) and it.open == "{":
                out.update(self._index_assignments(it, var, ctx, env, where))
            if (it == var or (it == "Schema" and i >= 2 and items[i - 1] == "." and items[i - 2] == var)) \
                    and i + 2 < len(items) and isinstance(items[i + 1], Group) and items[i + 1].open == "[" \
                    and items[i + 2] == "=":
                key_toks = items[i + 1].items
                if len(key_toks) == 1 and str(key_toks[0]).startswith('"'):
                    key = json.loads(key_toks[0])
                    val = statement(items, i + 3)
                    out[key] = self.schema_value(val, ctx, env, f"{where}.{key}")
        return out


# --------------------------------------------------------------------------- resources

def to_block(schema_map: dict) -> dict:
    """Provider schema map -> {"attributes": {...}, "blocks": {...}} as Terraform sees it."""
    attrs, blocks = {}, {}
    for name, entry in sorted(schema_map.items()):
        if name == "__unresolved__":
            attrs["*"] = {"unresolved": True, "optional": True}
            continue
        nested = entry.get("block")
        info = {k: v for k, v in entry.items() if k in ("required", "optional", "computed", "force_new",
                                                        "deprecated", "unresolved", "max_items", "min_items")}
        if nested is not None and entry.get("type") in ("list", "set") and not entry.get("config_mode_attr") \
                and not (entry.get("computed") and not entry.get("optional") and not entry.get("required")):
            info["block"] = to_block(nested)
            blocks[name] = info
        else:
            if nested is not None and entry.get("config_mode_attr"):
                info["block"] = to_block(nested)  # ConfigModeAttr: block syntax accepted too
            attrs[name] = info
    return {"attributes": attrs, "blocks": blocks}


def registrations(source: Source) -> tuple[dict[str, Func], dict[str, Func]]:
    """azurerm type -> the function returning its *pluginsdk.Resource (untyped)."""
    resources, data = {}, {}
    for f in [f for fs in list(source.funcs.values()) + list(source.methods.values()) for f in fs]:
        if f.name not in ("SupportedResources", "SupportedDataSources"):
            continue
        target = resources if f.name == "SupportedResources" else data
        ret = f.body.items
        for it in _walk_groups(f.body):
            for part in split_commas(it.items):
                kv = key_value(part)
                if kv and len(kv[0]) == 1 and str(kv[0][0]).startswith('"azurerm_'):
                    call = Reader(source)._call(kv[1])
                    if call:
                        fn = source.find_func(call[0], call[1], f.file)
                        if fn:
                            target[json.loads(kv[0][0])] = fn
        del ret
    return resources, data


def _walk_groups(g: Group):
    yield g
    for it in g.items:
        if isinstance(it, Group):
            yield from _walk_groups(it)


def typed(source: Source) -> dict[str, tuple[str, str]]:
    """azurerm type -> (receiver type, "resource"|"data") of typed SDK resources."""
    out = {}
    for (receiver, name), fs in source.methods.items():
        for f in fs:
            if name == "ResourceType":
                toks = [t for t in f.body.items if isinstance(t, str) and t != ";"]
                if len(toks) == 2 and toks[0] == "return" and toks[1].startswith('"azurerm_'):
                    kind = "data" if ("DataSource" in receiver or f.file.name.endswith("_data_source.go")
                                      or "data_source" in f.file.name) else "resource"
                    out.setdefault((json.loads(toks[1]), kind), (receiver, f.file))
    return out


def untyped_schema(reader: Reader, func: Func, where: str) -> dict:
    ret = reader._return_value(func.body)
    lit = None
    var = None
    if ret:
        toks = [v for v in ret if v != "&"]
        if len(toks) >= 4 and toks[2] == "Resource" and isinstance(toks[3], Group):
            lit = toks[3]
        elif len(toks) == 1:
            var = toks[0]
            found = reader._assigned(func.body, var)
            if found:
                ftoks = [v for v in found if v != "&"]
                if len(ftoks) >= 4 and ftoks[2] == "Resource" and isinstance(ftoks[3], Group):
                    lit = ftoks[3]
    if lit is None:
        reader.unresolved.append(f"{where} (resource literal)")
        return {"__unresolved__": {"unresolved": True}}
    schema = {}
    for part in split_commas(lit.items):
        kv = key_value(part)
        if kv and kv[0] == ["Schema"]:
            schema = reader.schema_map_value(kv[1], func, {}, where)
    if var:
        schema.update(reader._index_assignments(func.body, var, func, {}, where))
    return schema


def types_used() -> set[tuple[str, str]]:
    sys.path.insert(0, str(REPO_ROOT / "tests/static"))
    from tfrefs import load_module, module_dirs  # noqa: E402

    used = set(EXTRA_TYPES)
    for path in module_dirs(REPO_ROOT / "terraform"):
        m = load_module(path)
        used |= {(t, "resource") for t, _ in m.resources if t.startswith("azurerm_")}
        used |= {(t, "data") for t, _ in m.data if t.startswith("azurerm_")}
    return used


def extract(git_dir: Path, tag: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "src.tar"
        subprocess.run(["git", "-C", str(git_dir), "archive", "-o", str(archive), tag, "internal", "helpers",
                        "vendor/github.com/hashicorp/go-azure-helpers/resourcemanager/commonschema"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        commit = subprocess.run(["git", "-C", str(git_dir), "rev-list", "-n1", tag], check=True,
                                capture_output=True, text=True).stdout.strip()
        source = Source(Path(tmp))
        reader = Reader(source)
        resources, data = registrations(source)
        typed_types = typed(source)
        out: dict[str, Any] = {}
        for rtype, kind in sorted(types_used()):
            where = f"{kind} {rtype}"
            if (rtype, kind) in typed_types:
                receiver, near = typed_types[(rtype, kind)]
                schema = {}
                for method in ("Arguments", "Attributes"):
                    f = source.method(receiver, method, near)
                    if f:
                        part = reader.schema_map_of_func(f, where)
                        if method == "Attributes":
                            for v in part.values():
                                v.setdefault("computed", True)
                        schema.update(part)
            else:
                func = (resources if kind == "resource" else data).get(rtype)
                if func is None:
                    raise SystemExit(f"{where}: not registered at {tag}")
                schema = untyped_schema(reader, func, where)
            out.setdefault(kind, {})[rtype] = to_block(schema)
        return {
            "provenance": {
                "repository": "hashicorp/terraform-provider-azurerm",
                "tag": tag,
                "commit": commit,
                "license": "MPL-2.0 (schema facts extracted from the provider source; no code copied)",
                "files": "internal/**/*.go, helpers/**/*.go, vendor/github.com/hashicorp/go-azure-helpers/resourcemanager/commonschema/*.go",
                "generator": "scripts/extract-azurerm-schema.py",
                "unresolved": sorted(set(reader.unresolved)),
            },
            **out,
        }


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    git_dir, tag = Path(sys.argv[1]), sys.argv[2]
    result = extract(git_dir, tag)
    dest = REPO_ROOT / "contracts/terraform-azurerm" / f"schema-{tag}.jsonl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"provenance": result["provenance"]}, sort_keys=True)]
    for kind in ("resource", "data"):
        for rtype, block in sorted(result.get(kind, {}).items()):
            lines.append(json.dumps({"kind": kind, "type": rtype, "block": block}, sort_keys=True))
    dest.write_text("\n".join(lines) + "\n")
    print(f"wrote {dest.relative_to(REPO_ROOT)}; unresolved: {len(result['provenance']['unresolved'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
