"""What `terraform validate` would say about references, without terraform.

Built on python-hcl2's dict form (the real HCL2 grammar). For one module
directory it collects the declarations (variables with or without a default,
locals, module calls, data sources, resources, outputs) and every reference in
every expression, then reports each reference that does not resolve in that
module:

  var.X               a `variable "X"` of the module
  local.X             a key of one of the module's `locals` blocks
  module.X[.Y]        a `module "X"` call, and Y an output of the called module
  data.T.N            a `data "T" "N"` block
  T.N (T a resource type of a known provider)   a `resource "T" "N"` block

and for each call of a local module (`source = "./..."` or `"../.."`): every
argument is a variable of that module, and every variable without a default is
set. The text of string literals is not searched (a description that mentions
"var.x" is not a reference); their `${...}` interpolations are.

Used by tests/static/test_terraform_references.py; `python tests/static/tfrefs.py`
prints the problems of every module under terraform/ and exits 1 if there are any.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import hcl2

# Resource types are recognised by their provider prefix; add one here when a
# module starts using another provider.
PROVIDER_PREFIXES = ("azurerm", "azuread", "time", "random", "null", "terraform_data")
MODULE_META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}
SKIP_KEYS = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}

_REF = re.compile(
    r"(?<![\w.\-])(?P<root>var|local|module|data|output|[a-z][a-z0-9]*_[A-Za-z0-9_]+)"
    r"((?:\.[A-Za-z_][\w-]*|\[[^\]]*\])+)"
)


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


@dataclass
class Reference:
    text: str          # e.g. "local.computer_name_prefix"
    parts: list[str]   # dotted names, index expressions dropped
    where: str         # file:block path, for the message
    indexed: bool = False  # an index follows the resource/module name: T.N[...] or module.X[...]


@dataclass
class Module:
    path: Path
    variables: dict[str, bool] = field(default_factory=dict)      # name -> has a default
    locals: set[str] = field(default_factory=set)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> call body
    data: set[tuple[str, str]] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    resource_bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    repeated: set[tuple[str, ...]] = field(default_factory=set)  # with count or for_each: ("T", "N"), ("data", "T", "N"), ("module", "X")
    data_bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    references: list[Reference] = field(default_factory=list)


def expression_text(value: str) -> str:
    """The expression parts of one python-hcl2 value: the text outside string
    literals, including the `${...}` interpolations inside them."""
    if value.startswith("${") and value.endswith("}"):
        mode, text = "expr", value[2:-1]
    elif value.startswith('"') or value.startswith("<<"):
        mode, text = "str", value
    else:
        mode, text = "expr", value
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (mode to return to, brace depth)
    depth = 0
    i = 0
    in_string = mode == "str"
    if in_string and text.startswith('"'):
        i = 1
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if text.startswith("${", i):
                stack.append(("str", depth))
                depth = 0
                in_string = False
                out.append(" ")
                i += 2
                continue
            if c == '"' and stack and stack[-1][0] == "expr":
                in_string = False
                _, depth = stack.pop()
            i += 1
            continue
        if c == '"':
            stack.append(("expr", depth))
            in_string = True
            out.append(' "" ')
            i += 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0 and stack and stack[-1][0] == "str":
                _, depth = stack.pop()
                in_string = True
                out.append(" ")
                i += 1
                continue
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


def _references_in(value: Any, where: str) -> Iterator[Reference]:
    if isinstance(value, str):
        for match in _REF.finditer(expression_text(value)):
            tail = match.group(2)
            parts = [match.group("root")] + re.findall(r"\.([A-Za-z_][\w-]*)", re.sub(r"\[[^\]]*\]", "", tail))
            # Is the instance name (T.N, data.T.N, module.X) directly followed by an index?
            names = 2 if match.group("root") in ("data",) else 1
            head = re.match(r"((?:\.[A-Za-z_][\w-]*){%d})(\[)?" % names, tail)
            yield Reference(match.group(0), parts, where, indexed=bool(head and head.group(2)))
    elif isinstance(value, list):
        for item in value:
            yield from _references_in(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in SKIP_KEYS:
                continue
            yield from _references_in(item, where)


def load_module(path: Path) -> Module:
    module = Module(path)
    for tf in sorted(path.glob("*.tf")):
        doc = hcl2.loads(tf.read_text(encoding="utf-8"))
        rel = tf.name
        for block in doc.get("variable", []):
            for name, body in block.items():
                module.variables[_unquote(name)] = "default" in body
                for v in body.get("validation", []):
                    module.references.extend(_references_in(v, f"{rel}: variable {_unquote(name)}"))
        for block in doc.get("locals", []):
            for name, value in block.items():
                if name in SKIP_KEYS:
                    continue
                module.locals.add(name)
                module.references.extend(_references_in(value, f"{rel}: local.{name}"))
        for block in doc.get("module", []):
            for name, body in block.items():
                module.modules[_unquote(name)] = body
                if "count" in body or "for_each" in body:
                    module.repeated.add(("module", _unquote(name)))
                module.references.extend(_references_in(body, f"{rel}: module {_unquote(name)}"))
        for kind, store, bodies in (("data", module.data, module.data_bodies),
                                    ("resource", module.resources, module.resource_bodies)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        key = (_unquote(rtype), _unquote(name))
                        store.add(key)
                        bodies[key] = body
                        if "count" in body or "for_each" in body:
                            module.repeated.add(key if kind == "resource" else ("data", *key))
                        module.references.extend(_references_in(body, f"{rel}: {kind} {key[0]}.{key[1]}"))
        for block in doc.get("output", []):
            for name, body in block.items():
                module.outputs.add(_unquote(name))
                module.references.extend(_references_in(body, f"{rel}: output {_unquote(name)}"))
        for block in doc.get("terraform", []) + doc.get("provider", []):
            pass  # no references to check there
    return module


def module_source_dir(module: Module, call: dict[str, Any]) -> Path | None:
    source = _unquote(str(call.get("source", "")))
    if source.startswith("./") or source.startswith("../") or source in (".", ".."):
        return (module.path / source).resolve()
    return None


def _is_resource_type(root: str) -> bool:
    return any(root == p or root.startswith(p + "_") for p in PROVIDER_PREFIXES)


def problems(module: Module) -> list[str]:
    found: list[str] = []
    children = {}
    for name, call in module.modules.items():
        child_dir = module_source_dir(module, call)
        if child_dir is None:
            continue
        if not child_dir.is_dir():
            found.append(f"{module.path.name}: module {name}: source {child_dir} does not exist")
            continue
        children[name] = load_module(child_dir)

    for ref in module.references:
        root, parts = ref.parts[0], ref.parts
        if len(parts) < 2:
            continue
        if root == "var" and parts[1] not in module.variables:
            found.append(f"{ref.where}: Reference to undeclared input variable {ref.text!r}")
        elif root == "local" and parts[1] not in module.locals:
            found.append(f"{ref.where}: Reference to undeclared local value {ref.text!r}")
        elif root == "module":
            if parts[1] not in module.modules:
                found.append(f"{ref.where}: Reference to undeclared module {ref.text!r}")
            elif len(parts) >= 3 and parts[1] in children and parts[2] not in children[parts[1]].outputs:
                found.append(f"{ref.where}: Unsupported attribute: module {parts[1]!r} has no output {parts[2]!r} ({ref.text!r})")
        elif root == "data":
            if len(parts) < 3 or (parts[1], parts[2]) not in module.data:
                found.append(f"{ref.where}: Reference to undeclared data source {ref.text!r}")
        elif _is_resource_type(root) and (root, parts[1]) not in module.resources:
            found.append(f"{ref.where}: Reference to undeclared resource {ref.text!r}")

    # Instance keys: a resource, data source or module with count/for_each is a
    # collection, so an attribute needs an index (T.N[0].x, T.N["k"].x); one without
    # them takes none. A bare T.N (for-expressions, length(), depends_on) is fine.
    for ref in module.references:
        parts = ref.parts
        if parts[0] == "module" and len(parts) >= 2:
            key, has_attr = ("module", parts[1]), len(parts) >= 3
        elif parts[0] == "data" and len(parts) >= 3:
            key, has_attr = ("data", parts[1], parts[2]), len(parts) >= 4
        elif _is_resource_type(parts[0]) and len(parts) >= 2:
            key, has_attr = (parts[0], parts[1]), len(parts) >= 3
        else:
            continue
        declared = (key[1] in module.modules if key[0] == "module" else
                    (key[1], key[2]) in module.data if key[0] == "data" else key in module.resources)
        if not declared:
            continue
        if key in module.repeated and has_attr and not ref.indexed:
            found.append(f"{ref.where}: Missing resource instance key: {'.'.join(key)} has count or for_each ({ref.text!r})")
        elif key not in module.repeated and ref.indexed:
            found.append(f"{ref.where}: Unexpected resource instance key: {'.'.join(key)} has neither count nor for_each ({ref.text!r})")

    for name, child in children.items():
        call = module.modules[name]
        arguments = {k for k in call if k not in SKIP_KEYS and k not in MODULE_META_ARGUMENTS}
        for arg in sorted(arguments - set(child.variables)):
            found.append(f"{module.path.name}: module {name}: Unsupported argument {arg!r}: "
                         f"{child.path.name} declares no variable {arg!r}")
        for var in sorted(v for v, has_default in child.variables.items() if not has_default):
            if var not in arguments:
                found.append(f"{module.path.name}: module {name}: Missing required argument {var!r} "
                             f"(variable of {child.path.name} without a default)")
    return found


def module_dirs(terraform: Path) -> list[Path]:
    return [terraform, *sorted(p for p in (terraform / "modules").iterdir() if p.is_dir()),
            *sorted(p for p in (terraform / "examples").iterdir() if p.is_dir())]


def main() -> int:
    terraform = Path(__file__).resolve().parents[2] / "terraform"
    failed = False
    for path in module_dirs(terraform):
        for problem in problems(load_module(path)):
            print(f"{path.relative_to(terraform.parent)}: {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
