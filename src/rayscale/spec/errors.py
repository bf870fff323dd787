"""One error type for every bad spec: :class:`SpecError` with a list of :class:`Problem`.

Each problem names the field (``spec.workerGroupSpecs[0].minReplicas``), says what is wrong and
gives a concrete fix. Pydantic's ``ValidationError`` never reaches the user: it is translated
here into the same problems.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

__all__ = ["Loc", "Problem", "SpecError", "format_path", "problems_from_validation_error"]

Loc = tuple[str | int, ...]
"""A field location as a tuple of mapping keys and list indexes."""

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(loc: Iterable[str | int]) -> str:
    """``("spec", "workerGroupSpecs", 0, "x")`` -> ``spec.workerGroupSpecs[0].x``.

    Keys that are not plain identifiers are quoted: ``limits["nvidia.com/gpu"]``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _BARE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec: where (``path``), what (``message``) and how to fix it."""

    path: str
    message: str
    fix: str
    line: int | None = None
    """1-based line in the source YAML, when the spec came from text."""

    @classmethod
    def at(cls, loc: Iterable[str | int], message: str, fix: str) -> Problem:
        return cls(format_path(loc), message, fix)

    def with_line(self, line: int | None) -> Problem:
        return replace(self, line=line)

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}. Fix: {self.fix}"


class SpecError(Exception):
    """A spec that rayscale (and KubeRay) would reject, with every problem found in it."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self.format())

    def format(self) -> str:
        """A human-readable report: one block per problem, with its path, line and fix."""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}invalid RayCluster spec ({count} {noun}):"]
        for problem in self.problems:
            where = problem.path or "(file)"
            if problem.line:
                where += f" (line {problem.line})"
            lines.append(f"  - {where}: {problem.message}")
            lines.append(f"      fix: {problem.fix}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# pydantic -> Problem

_FIELD_FIXES = {
    "groupName": "add groupName: <name>, a unique name for this worker group",
    "headGroupSpec": "add a headGroupSpec with rayStartParams and a pod template for the head",
    "template": "add a pod template: template: {spec: {containers: [{name: ray, image: ...}]}}",
    "metadata": "add metadata: {name: <cluster-name>}",
    "spec": "add a spec with a headGroupSpec",
    "name": "add name: <name>",
    "mountPath": "add mountPath: /path/in/container",
}


def problems_from_validation_error(error: ValidationError, prefix: Loc = ()) -> list[Problem]:
    """Translate every pydantic error into a :class:`Problem` with a path, message and fix."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for detail in error.errors(include_url=False):
        loc: Loc = prefix + tuple(_clean_loc(detail["loc"]))
        message, fix = _describe(detail, loc)
        key = (format_path(loc), message)
        if key not in seen:
            seen.add(key)
            problems.append(Problem.at(loc, message, fix))
    return problems


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Drop pydantic's synthetic location parts (union member names, tagged-union tags)."""
    synthetic = {"str", "int", "float", "bool", "function-plain", "function-after", "literal"}
    return [part for part in loc if not (isinstance(part, str) and part.split("[")[0] in synthetic)]


def _describe(detail: Any, loc: Loc) -> tuple[str, str]:
    kind: str = detail["type"]
    value = detail.get("input")
    field = str(loc[-1]) if loc and isinstance(loc[-1], str) else "value"
    shown = _show(value)
    if kind == "missing":
        return f"{field} is required", _FIELD_FIXES.get(field, f"add {field}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {shown}", _int_fix(field, value)
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {shown}", f"write {field}: true or {field}: false"
    if kind == "string_type":
        return f"must be a string, got {shown}", _string_fix(field, value)
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping (key: value), got {shown}", f"write {field} as a YAML mapping"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {shown}", f"write {field} as a YAML list (- item)"
    if kind == "literal_error":
        return _literal(detail, field, value)
    if kind in ("value_error", "assertion_error") or kind.startswith("quantity"):
        ctx = detail.get("ctx") or {}
        return str(detail["msg"]), str(ctx.get("fix", f"correct {field}"))
    return f"{detail['msg']} (got {shown})", f"correct {field}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__ if isinstance(value, list) else 'mapping'}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _int_fix(field: str, value: object) -> str:
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return f"write {field}: {value.strip()} without quotes"
    if isinstance(value, float) and value.is_integer():
        return f"write {field}: {int(value)}"
    return f"write {field} as a whole number, e.g. {field}: 1"


def _string_fix(field: str, value: object) -> str:
    if field == "rayVersion":
        return 'quote it: rayVersion: "2.60.0" (unquoted, YAML reads 2.60 as the number 2.6)'
    if isinstance(value, bool):
        return f'quote it: {field}: "{str(value).lower()}"'
    if isinstance(value, (int, float)):
        return f'quote it: {field}: "{value}" (Kubernetes stores this field as a string)'
    return f'write {field} as a quoted string, e.g. {field}: "..."'


def _literal(detail: Any, field: str, value: object) -> tuple[str, str]:
    expected = str((detail.get("ctx") or {}).get("expected", ""))
    options = re.findall(r"'([^']*)'", expected)
    message = f"{_show(value)} is not one of {', '.join(options)}"
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    lowered = {option.lower(): option for option in options}
    if isinstance(value, str) and value.lower() in lowered:
        return message, f"write {field}: {lowered[value.lower()]} (values are case-sensitive)"
    if close:
        return message, f"did you mean {field}: {close[0]}? Allowed: {', '.join(options)}"
    return message, f"use one of: {', '.join(options)}"
