"""Read the Bicep in ``infra/`` with ``pycep-parser`` and evaluate the parts the tests check.

``pycep`` turns Bicep into JSON but does not evaluate it: references to parameters, variables and
loop items appear as bare strings, indistinguishable from string literals, and interpolations
stay inside their strings (``"0 */${minutes} * * * *"``). ``Template.evaluate`` resolves them:

- a bare string that names a parameter, a variable or a loop item is that value; any other
  string is a literal, with each ``${...}`` parsed by pycep and evaluated in turn;
- parameters take the values the test passes, else their defaults;
- the handful of functions and operators the templates use are evaluated (``join``, ``string``,
  ``split``, ``last``, ``union``, ``environment()`` of the public cloud, comparisons, ``?:``,
  arithmetic, property and index access);
- whatever is only known at deployment time (a resource's or module's properties, outputs and
  ids) evaluates to ``UNRESOLVED``, which propagates.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
_INTERPOLATION = re.compile(r"\$\{((?:[^{}]|\{[^{}]*\})*)\}")


class _Unresolved:
    def __repr__(self) -> str:
        return "UNRESOLVED"


UNRESOLVED: Any = _Unresolved()
PUBLIC_CLOUD = {
    "name": "AzureCloud",
    "resourceManager": "https://management.azure.com/",
    "suffixes": {"keyvaultDns": ".vault.azure.net", "storage": "core.windows.net"},
}


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one Bicep file (cached: the grammar is slow to run)."""
    return cast("dict[str, Any]", _parser().parse(file_path=path))


@cache
def _expression(text: str) -> Any:
    return _parser().parse(text=f"var x = {text}\n")["variables"]["x"]["value"]


def bicep_files() -> list[Path]:
    """Every ``.bicep`` file under ``infra/``."""
    return sorted(INFRA.rglob("*.bicep"))


def body(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's or module's own body, unwrapping ``if (...)`` and ``[for ...]``."""
    config = declaration["config"]
    while isinstance(config, dict) and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def key(name: str) -> str:
    """An object key without the quotes pycep keeps (``'azd-service-name'``)."""
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "'" else name


@dataclass
class Template:
    """One Bicep file with parameter values, evaluating expressions on demand."""

    path: Path
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.json = parse(self.path)
        self.parameters: dict[str, Any] = self.json.get("parameters", {})
        self.variables: dict[str, Any] = self.json.get("variables", {})
        self.resources: dict[str, Any] = self.json.get("resources", {})
        self.modules: dict[str, Any] = self.json.get("modules", {})
        missing = [
            n
            for n, p in self.parameters.items()
            if p.get("default") is None and n not in self.arguments
        ]
        if missing:
            raise ValueError(f"{self.path.name}: no value for parameters {missing}")

    def resources_of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The bodies of the resources of one type, by symbolic name."""
        return {n: body(r) for n, r in self.resources.items() if r["type"] == kind}

    def evaluate(self, node: Any, scope: Mapping[str, Any] | None = None) -> Any:  # noqa: PLR0911
        """The value of a pycep JSON node (see the module docstring)."""
        scope = scope or {}
        if isinstance(node, str):
            return self._name_or_literal(node, scope)
        if isinstance(node, list):
            return [self.evaluate(item, scope) for item in node]
        if not isinstance(node, dict):
            return node
        if "function" in node:
            return self._function(node["function"], scope)
        if "operator" in node:
            return self._operator(node["operator"], scope)
        if "loop_type" in node:
            detail = node["loop_type"]["detail"]
            items = self.evaluate(detail["array_name"], scope)
            if items is UNRESOLVED:
                return UNRESOLVED
            return [
                self.evaluate(node["config"], {**scope, detail["item_name"]: item})
                for item in items
            ]
        return {key(k): self.evaluate(v, scope) for k, v in node.items()}

    def _name_or_literal(self, text: str, scope: Mapping[str, Any]) -> Any:
        if text in scope:
            return scope[text]
        if text in self.arguments:
            return self.arguments[text]
        if text in self.parameters:
            return self.evaluate(self.parameters[text].get("default"), scope)
        if text in self.variables:
            return self.evaluate(self.variables[text]["value"], scope)
        if text in self.resources or text in self.modules:
            return UNRESOLVED
        return self._interpolate(text, scope)

    def _interpolate(self, text: str, scope: Mapping[str, Any]) -> Any:
        parts: list[str] = []
        position = 0
        for match in _INTERPOLATION.finditer(text):
            value = self.evaluate(_expression(match.group(1)), scope)
            if value is UNRESOLVED:
                return UNRESOLVED
            parts += [text[position : match.start()], _text(value)]
            position = match.end()
        return "".join([*parts, text[position:]])

    def _function(self, function: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
        kind = function["type"]
        arguments = [self.evaluate(a, scope) for a in (function.get("parameters") or {}).values()]
        if kind == "environment":
            return PUBLIC_CLOUD
        if kind == "subscription":
            return {"id": "/subscriptions/00000000-0000-0000-0000-000000000000"}
        if kind == "resource_group":
            return {"id": UNRESOLVED, "location": "westeurope"}
        if any(a is UNRESOLVED for a in arguments):
            return UNRESOLVED
        functions: dict[str, Callable[..., Any]] = {
            "join": lambda items, separator: separator.join(items),
            "string": _text,
            "split": lambda text, separator: text.split(separator),
            "last": lambda items: items[-1],
            "to_lower": str.lower,
            "union": lambda *objects: {k: v for o in objects for k, v in o.items()},
            "unique_string": lambda *texts: hashlib.sha256("|".join(texts).encode()).hexdigest()[
                :13
            ],
            "empty": lambda value: not value,
            "concat": lambda *items: [i for item in items for i in item],
        }
        if kind not in functions:
            return UNRESOLVED
        return functions[kind](*[a for a in arguments if a is not None])

    def _operator(self, op: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:  # noqa: PLR0911
        kind, operands = op["type"], op["operands"]
        if kind == "conditional":
            condition = self.evaluate(operands["condition"], scope)
            if condition is UNRESOLVED:
                return UNRESOLVED
            return self.evaluate(operands["true_value" if condition else "false_value"], scope)
        if kind == "property_accessor":
            target = self.evaluate(operands["operand_1"], scope)
            name = operands["operand_2"]
            if target is UNRESOLVED:
                return UNRESOLVED
            if isinstance(name, dict):  # a.b.c parses as a.(b.c)
                return self._access(target, name, scope)
            return target[name]
        values = [self.evaluate(v, scope) for v in operands.values()]
        if any(v is UNRESOLVED for v in values):
            return UNRESOLVED
        binary: dict[str, Callable[[Any, Any], Any]] = {
            "index_accessor": operator.getitem,
            "less_than": operator.lt,
            "greater_than": operator.gt,
            "equals": operator.eq,
            "not_equals": operator.ne,
            "multiply": operator.mul,
            "divide": operator.floordiv,
            "add": operator.add,
            "minus": operator.sub,
            "and": lambda a, b: a and b,
            "or": lambda a, b: a or b,
        }
        if kind == "logical_not":
            return not values[0]
        return binary[kind](*values)

    def _access(self, target: Any, name: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
        """``target.b.c`` where pycep nested the path as ``b.c``."""
        inner = name["operator"]["operands"]
        first = target[inner["operand_1"]]
        rest = inner["operand_2"]
        return self._access(first, rest, scope) if isinstance(rest, dict) else first[rest]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
