"""Evaluate the subset of HCL/Terraform expressions this repository's operator
config path uses, on python-hcl2's parse tree. No terraform binary can be
installed here, so tests/static/test_operator_config.py follows the real chain
with it: example module call -> root `module "scaler"` arguments -> the scaler
module's templatefile() call -> operator-config.json.tftpl -> JSON.

Anything outside the subset raises Unsupported instead of guessing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree


class Unsupported(Exception):
    """The expression uses syntax or a function this evaluator does not model."""


class EvalError(Exception):
    """The expression is modelled but fails as Terraform's would (regex without a match,
    a missing key); can() and try() catch this, never Unsupported."""


class Optional_:
    """The value of `optional(type, default)` inside a type expression."""

    def __init__(self, type_: Any, default: Any = None) -> None:
        self.type = type_
        self.default = default


class ObjectType:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs


PRIMITIVE_TYPES = {"string", "number", "bool", "any"}


def parse_file(path: Path) -> Tree:
    return hcl2.parses_to_tree(path.read_text(encoding="utf-8"))


def _children(node: Tree) -> list[Any]:
    """Children without punctuation tokens and newline/comment trees."""
    out = []
    for child in node.children:
        if isinstance(child, Tree) and child.data == "new_line_or_comment":
            continue
        if isinstance(child, Token) and child.type not in ("NAME", "STRING_CHARS", "INT_LITERAL", "FLOAT_LITERAL",
                                                          "TRUE", "FALSE", "NULL", "ESCAPED_INTERPOLATION",
                                                          "DOUBLE_EQ", "NEQ", "LT", "GT", "LEQ", "GEQ", "MINUS",
                                                          "PLUS", "ASTERISK", "SLASH", "PERCENT", "DOUBLE_AMP",
                                                          "DOUBLE_PIPE", "NOT", "ELLIPSIS"):
            continue
        out.append(child)
    return out


def _name(node: Any) -> str:
    if isinstance(node, Tree) and node.data in ("identifier", "keyword"):
        return str(node.children[0])
    if isinstance(node, Tree) and node.data == "expr_term":
        return _name(_children(node)[0])
    if isinstance(node, Tree) and node.data == "string":
        return "".join(str(p.children[0]) for p in _children(node))
    raise Unsupported(f"not a name: {node}")


def blocks(body_or_tree: Tree, block_type: str, *labels: str) -> list[Tree]:
    """Blocks of one type (and leading labels) directly inside a body."""
    body = body_or_tree.children[0] if body_or_tree.data == "start" else body_or_tree
    found = []
    for child in _children(body):
        if isinstance(child, Tree) and child.data == "block":
            parts = [c for c in _children(child) if not (isinstance(c, Tree) and c.data == "body")]
            names = [_name(p) for p in parts]
            if names[0] == block_type and names[1 : 1 + len(labels)] == list(labels):
                found.append(child)
    return found


def block_body(block: Tree) -> Tree:
    return next(c for c in block.children if isinstance(c, Tree) and c.data == "body")


def attribute(body: Tree, name: str) -> Tree | None:
    """The expression of attribute `name` directly inside a body, or None."""
    for child in _children(body):
        if isinstance(child, Tree) and child.data == "attribute":
            parts = _children(child)
            if _name(parts[0]) == name:
                return parts[-1]
    return None


def attributes(body: Tree) -> dict[str, Tree]:
    out = {}
    for child in _children(body):
        if isinstance(child, Tree) and child.data == "attribute":
            parts = _children(child)
            out[_name(parts[0])] = parts[-1]
    return out


def _unescape(text: str) -> str:
    return json.loads('"' + text.replace("\n", "\\n") + '"')


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise Unsupported(f"cannot interpolate {type(value).__name__}")


class Evaluator:
    def __init__(self, scope: dict[str, Any], base_dir: Path | None = None) -> None:
        self.scope = scope
        self.base_dir = base_dir

    # -- functions ---------------------------------------------------------
    def _call(self, name: str, args: list[Any]) -> Any:
        if name == "jsonencode":
            return json.dumps(args[0], sort_keys=True, separators=(",", ":"))
        if name == "jsondecode":
            return json.loads(args[0])
        if name == "base64encode":
            import base64
            return base64.b64encode(args[0].encode("utf-8")).decode("ascii")
        if name == "merge":
            out: dict[str, Any] = {}
            for arg in args:
                if arg is not None:
                    out.update(arg)
            return out
        if name == "coalesce":
            found = [a for a in args if a is not None and a != ""]
            if not found:
                raise EvalError("coalesce: no non-null, non-empty argument")
            return found[0]
        if name == "regex":
            # RE2 and Python agree on the anchored character-class patterns used here.
            match = re.search(args[0], args[1])
            if match is None:
                raise EvalError(f"regex {args[0]!r} does not match {args[1]!r}")
            groups = match.groups()
            if not groups:
                return match.group(0)
            if match.re.groupindex:
                return match.groupdict()
            return list(groups)
        if name == "regexall":
            # Terraform's result shape: per match a string without groups, a list of the
            # groups, or a map of the named ones.
            matches = list(re.finditer(args[0], args[1]))
            out_matches: list[Any] = []
            for match in matches:
                if not match.groups():
                    out_matches.append(match.group(0))
                elif match.re.groupindex:
                    out_matches.append(match.groupdict())
                else:
                    out_matches.append(list(match.groups()))
            return out_matches
        if name == "tonumber":
            if args[0] is None or (isinstance(args[0], (int, float)) and not isinstance(args[0], bool)):
                return args[0]
            if isinstance(args[0], str):
                try:
                    return int(args[0]) if re.fullmatch(r"-?[0-9]+", args[0]) else float(args[0])
                except ValueError:
                    pass
            raise EvalError(f"tonumber: cannot convert {args[0]!r}")
        if name == "sum":
            if not args[0]:
                raise EvalError("sum: cannot sum an empty list")
            return sum(args[0])
        if name == "contains":
            return args[1] in args[0]
        if name == "alltrue":
            return all(args[0])
        if name == "anytrue":
            return any(args[0])
        if name == "distinct":
            out_list: list[Any] = []
            for item in args[0]:
                if item not in out_list:
                    out_list.append(item)
            return out_list
        if name == "floor":
            import math
            return math.floor(args[0])
        if name == "startswith":
            return args[0].startswith(args[1])
        if name == "templatefile":
            return render_template(Path(args[0]), args[1])
        if name == "file":
            return Path(args[0]).read_text(encoding="utf-8")
        if name == "tostring":
            return _to_string(args[0])
        if name == "length":
            return len(args[0])
        if name == "lower":
            return args[0].lower()
        if name == "optional":
            return Optional_(*args)
        if name == "object":
            return ObjectType(args[0])
        if name in ("list", "set", "map", "tuple"):
            return (name, args[0])
        raise Unsupported(f"function {name}()")

    # -- expressions -------------------------------------------------------
    def eval(self, node: Any) -> Any:
        if isinstance(node, Token):
            raise Unsupported(f"token {node.type}")
        kind = node.data
        kids = _children(node)
        if kind == "expr_term":
            return self.eval(kids[0])
        if kind == "identifier":
            name = str(node.children[0])
            if name in PRIMITIVE_TYPES:
                return name
            if name not in self.scope:
                raise Unsupported(f"unknown name {name}")
            return self.scope[name]
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(node.children[0])]
        if kind == "int_lit":
            return int(str(node.children[0]))
        if kind == "float_lit":
            return float(str(node.children[0]))
        if kind == "string":
            out = []
            for part in kids:
                inner = part.children[0]
                if isinstance(inner, Token) and inner.type == "STRING_CHARS":
                    out.append(_unescape(str(inner)))
                elif isinstance(inner, Token) and inner.type == "ESCAPED_INTERPOLATION":
                    out.append(str(inner)[1:])
                elif isinstance(inner, Tree) and inner.data == "interpolation":
                    out.append(_to_string(self.eval(_children(inner)[0])))
                else:
                    raise Unsupported(f"string part {inner}")
            return "".join(out)
        if kind == "object":
            result = {}
            for elem in kids:
                key_node, value_node = _children(elem)
                key_expr = _children(key_node)[0]
                inner = _children(key_expr)[0] if isinstance(key_expr, Tree) and key_expr.data == "expr_term" else key_expr
                key = _name(inner) if isinstance(inner, Tree) and inner.data in ("identifier", "keyword") else self.eval(key_expr)
                result[key] = self.eval(value_node)
            return result
        if kind == "tuple":
            return [self.eval(k) for k in kids]
        if kind == "function_call":
            name = _name(kids[0])
            if name in ("can", "try"):
                # Evaluation errors are the answer here; unmodelled syntax is not.
                for arg in (_children(kids[1]) if len(kids) > 1 else []):
                    try:
                        value = self.eval(arg)
                    except (EvalError, KeyError, IndexError, TypeError):
                        continue
                    return True if name == "can" else value
                if name == "can":
                    return False
                raise EvalError("try: no argument evaluated without an error")
            args = [self.eval(a) for a in _children(kids[1])] if len(kids) > 1 else []
            return self._call(name, args)
        if kind == "get_attr_expr_term":
            target = self.eval(kids[0])
            attr = _name(_children(kids[1])[0])
            if isinstance(target, dict):
                if attr not in target:
                    raise Unsupported(f"missing attribute {attr}")
                return target[attr]
            if target is None:
                # Terraform: "Attempt to get attribute from null value", which try() catches.
                raise EvalError(f"attribute {attr} of null")
            raise Unsupported(f"attribute {attr} of {type(target).__name__}")
        if kind == "index_expr_term":
            target = self.eval(kids[0])
            index = self.eval(_children(kids[1])[0])
            return target[index]
        if kind == "conditional":
            cond, yes, no = kids
            chosen = self.eval(cond)
            if not isinstance(chosen, bool):
                raise Unsupported("condition is not a bool")
            return self.eval(yes if chosen else no)
        if kind == "binary_op":
            left = self.eval(kids[0])
            op_node, right_node = _children(kids[1])
            op = str(_children(op_node)[0]) if isinstance(op_node, Tree) else str(op_node)
            right = self.eval(right_node)
            ops = {
                "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
                "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
                "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "%": lambda a, b: a % b,
                "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
            }
            if op not in ops:
                raise Unsupported(f"operator {op}")
            return ops[op](left, right)
        if kind == "unary_op":
            op, operand = str(node.children[0]), self.eval(node.children[1])
            return (not operand) if op == "!" else -operand
        if kind in ("for_object_expr", "for_tuple_expr"):
            return self._for(node, kind)
        raise Unsupported(f"syntax {kind}")

    def _for(self, node: Tree, kind: str) -> Any:
        kids = _children(node)
        intro = kids[0]
        intro_kids = [k for k in _children(intro)]
        names = [_name(k) for k in intro_kids if isinstance(k, Tree) and k.data == "identifier"]
        collection = self.eval(intro_kids[-1])
        cond = next((k for k in kids if isinstance(k, Tree) and k.data == "for_cond"), None)
        exprs = [k for k in kids[1:] if not (isinstance(k, Tree) and k.data == "for_cond")
                 and not (isinstance(k, Token) and k.type == "ELLIPSIS")]
        items = sorted(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
        out_obj: dict[str, Any] = {}
        out_list: list[Any] = []
        for key, value in items:
            local = dict(self.scope)
            if len(names) == 2:
                local[names[0]], local[names[1]] = key, value
            else:
                local[names[0]] = value
            inner = Evaluator(local, self.base_dir)
            if cond is not None and not inner.eval(_children(cond)[-1]):
                continue
            if kind == "for_object_expr":
                out_obj[inner.eval(exprs[0])] = inner.eval(exprs[1])
            else:
                out_list.append(inner.eval(exprs[0]))
        return out_obj if kind == "for_object_expr" else out_list


TEMPLATE = re.compile(r"^\$\{(?P<expr>.*)\}\s*$", re.DOTALL)


def render_template(path: Path, variables: dict[str, Any]) -> str:
    """templatefile() for templates that are one `${...}` interpolation."""
    text = path.read_text(encoding="utf-8")
    match = TEMPLATE.match(text)
    if not match or "%{" in text:
        raise Unsupported(f"{path}: only single-interpolation templates are modelled")
    tree = hcl2.parses_to_tree("value = " + match.group("expr") + "\n")
    expr = attribute(tree.children[0], "value")
    result = Evaluator(dict(variables)).eval(expr)
    if not isinstance(result, str):
        raise Unsupported("template result is not a string")
    return result + text[match.end("expr") + 1 :]


class LocalValues(dict):
    """A module's `local` object, evaluated on first use from its `locals` blocks.

    `given` values (stand-ins for locals that read data sources or resources) win;
    every other local is evaluated in `scope` (which should hold this object as
    "local") when an expression first reads it, so only the locals a tested path
    actually uses are modelled, and anything beyond the subset still raises."""

    def __init__(self, module_dir: Path, scope: dict[str, Any], given: dict[str, Any] | None = None) -> None:
        super().__init__(given or {})
        self.scope = scope
        self.exprs: dict[str, Tree] = {}
        for path in sorted(module_dir.glob("*.tf")):
            for block in blocks(parse_file(path), "locals"):
                self.exprs.update(attributes(block_body(block)))

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self.exprs

    def __getitem__(self, name: str) -> Any:
        if not dict.__contains__(self, name):
            if name not in self.exprs:
                raise Unsupported(f"unknown local {name}")
            dict.__setitem__(self, name, Evaluator(self.scope).eval(self.exprs[name]))
        return dict.__getitem__(self, name)


def type_spec(variable_block: Tree) -> Any:
    """Evaluate a variable's `type` expression into a spec for apply_defaults()."""
    expr = attribute(block_body(variable_block), "type")
    return Evaluator({}).eval(expr) if expr is not None else "any"


def apply_defaults(spec: Any, value: Any) -> Any:
    """Type conversion as Terraform does it for objects with optional() attributes."""
    if value is None:
        return None
    if isinstance(spec, ObjectType):
        out = {}
        for name, attr_spec in spec.attrs.items():
            if isinstance(attr_spec, Optional_):
                raw = value.get(name, attr_spec.default)
                if raw is None:
                    raw = attr_spec.default
                out[name] = apply_defaults(attr_spec.type, raw)
            else:
                if name not in value:
                    raise Unsupported(f"required attribute {name} missing")
                out[name] = apply_defaults(attr_spec, value[name])
        return out
    if isinstance(spec, tuple) and spec[0] in ("list", "set"):
        return [apply_defaults(spec[1], v) for v in value]
    if isinstance(spec, tuple) and spec[0] == "map":
        return {k: apply_defaults(spec[1], v) for k, v in value.items()}
    return value


def module_variables(module_dir: Path) -> dict[str, Tree]:
    """variable blocks of a module by name."""
    out = {}
    for path in sorted(module_dir.glob("*.tf")):
        tree = parse_file(path)
        for block in blocks(tree, "variable"):
            name = _name([c for c in _children(block) if not (isinstance(c, Tree) and c.data == "body")][1])
            out[name] = block
    return out


def resolve_inputs(module_dir: Path, given: dict[str, Any]) -> dict[str, Any]:
    """A module's `var` object: given values, else defaults; optional() defaults applied."""
    result = {}
    for name, block in module_variables(module_dir).items():
        body = block_body(block)
        if name in given:
            raw = given[name]
        else:
            default = attribute(body, "default")
            if default is None:
                raise Unsupported(f"{module_dir}: required variable {name} not given")
            raw = Evaluator({}).eval(default)
        result[name] = apply_defaults(type_spec(block), raw)
    return result


def validation_failures(module_dir: Path, var: dict[str, Any], names: list[str]) -> list[tuple[str, str]]:
    """Evaluate the validation blocks of the named variables as Terraform (>= 1.9, so a
    condition may read other variables) would, given the module's resolved `var` object.
    Returns (variable, error_message) for each failing rule."""
    declared = module_variables(module_dir)
    failures = []
    for name in names:
        if name not in declared:
            raise Unsupported(f"{module_dir}: no variable {name}")
        for rule in blocks(block_body(declared[name]), "validation"):
            body = block_body(rule)
            ok = Evaluator({"var": var}).eval(attribute(body, "condition"))
            if not isinstance(ok, bool):
                raise Unsupported(f"{name}: validation condition is not a bool")
            if not ok:
                failures.append((name, Evaluator({"var": var}).eval(attribute(body, "error_message"))))
    return failures
