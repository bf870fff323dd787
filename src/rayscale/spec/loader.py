"""Load a RayCluster (and its ConfigMaps) from YAML text or a file.

A file may hold several YAML documents, as KubeRay's samples do: exactly one RayCluster, any
number of ConfigMaps (returned as ``name -> data``), and other objects (kept, unparsed). Bad
YAML, no RayCluster, two RayClusters, a document that is not a mapping and every problem of
the RayCluster itself all raise the same :class:`SpecError`, with YAML line numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rayscale.spec.errors import Loc, Problem, SpecError, format_path
from rayscale.spec.models import KIND, RayCluster
from rayscale.spec.validation import find_problems, structural_problems

__all__ = ["LoadedSpec", "load_file", "load_text", "parse_cluster"]


@dataclass(frozen=True)
class LoadedSpec:
    """What a YAML file holds: the RayCluster, its ConfigMaps and any other objects."""

    cluster: RayCluster
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """ConfigMap name -> its ``data`` (file name -> content), e.g. the ``ray-example`` scripts."""
    others: tuple[Mapping[str, Any], ...] = ()
    """Documents that are neither the RayCluster nor a ConfigMap, as parsed."""
    source: str | None = None


def parse_cluster(data: Mapping[str, Any], *, validate: bool = True) -> RayCluster:
    """Build a RayCluster from a parsed mapping; raise SpecError listing every problem.

    With ``validate=False`` only the types are checked (as the API server does).
    """
    if not isinstance(data, Mapping):
        raise SpecError([_not_an_object("", data)])
    problems = find_problems(data) if validate else structural_problems(data)
    if problems:
        raise SpecError(problems)
    return RayCluster.model_validate(data)


def load_file(path: str | os.PathLike[str], *, validate: bool = True) -> LoadedSpec:
    """Load a YAML file; see :func:`load_text`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(
            [Problem("", "the file is not UTF-8 text", "pass a RayCluster YAML file")], source
        ) from None
    except OSError as err:
        reason = err.strerror or str(err)
        raise SpecError(
            [Problem("", f"cannot read the file: {reason}", "check the path and permissions")],
            source,
        ) from None
    return load_text(text, source=source, validate=validate)


def load_text(text: str, *, source: str | None = None, validate: bool = True) -> LoadedSpec:
    """Parse YAML text holding one RayCluster, plus optional ConfigMaps and other objects."""
    documents = _read_documents(text, source)
    problems: list[Problem] = [p for doc in documents for p in doc.problems]
    clusters = [doc for doc in documents if doc.is_cluster]
    config_maps = _config_maps([doc for doc in documents if doc.kind == "ConfigMap"], problems)
    others = tuple(doc.data for doc in documents if doc.is_object and not doc.is_cluster)
    others = tuple(obj for obj in others if obj.get("kind") != "ConfigMap")
    problems.extend(_count_problems(clusters, documents))
    if len(clusters) == 1:
        doc = clusters[0]
        found = find_problems(doc.data) if validate else structural_problems(doc.data)
        problems.extend(problem.with_line(doc.line_of(problem.path)) for problem in found)
    if problems:
        # File-level problems first, then in the order of the YAML lines.
        problems.sort(key=lambda problem: problem.line or 0)
        raise SpecError(problems, source)
    cluster = RayCluster.model_validate(clusters[0].data)
    return LoadedSpec(cluster, config_maps, others, source)


# ---------------------------------------------------------------------------------------------


@dataclass
class _Document:
    index: int
    """1-based position in the stream."""
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def is_object(self) -> bool:
        return isinstance(self.data, Mapping)

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if self.is_object else None
        return kind if isinstance(kind, str) else None

    @property
    def is_cluster(self) -> bool:
        return self.kind is not None and self.kind.lower() == KIND.lower()

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if self.is_object else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        return name if isinstance(name, str) else "(no name)"

    @property
    def prefix(self) -> str:
        return f"document[{self.index}]"

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, or of its nearest enclosing field present in the YAML."""
        while True:
            if path in self.lines:
                return self.lines[path]
            shorter = _LAST_PART.sub("", path)
            if shorter == path:
                return None
            path = shorter


_LAST_PART = re.compile(r'(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\["[^"]*"\]|^[A-Za-z_][\w-]*)$')


def _read_documents(text: str, source: str | None) -> list[_Document]:
    loader = yaml.SafeLoader(text)
    documents: list[_Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said a document follows
                break
            document = _Document(len(documents) + 1, loader.construct_document(node))
            _index(node, (), document)
            documents.append(document)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err)], source) from None
    finally:
        loader.dispose()
    for document in documents:
        if document.data is not None and not document.is_object:
            document.problems.append(_not_an_object(document.prefix, document.data))
    return documents


def _index(node: Node, loc: Loc, document: _Document) -> None:
    """Record the line of every field, and flag duplicate keys (YAML would keep the last)."""
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            child = (*loc, key)
            if key in seen:
                document.problems.append(_duplicate_key(child, seen[key], line))
            seen[key] = line
            document.lines[format_path(child)] = line
            _index(value_node, child, document)
    elif isinstance(node, SequenceNode):
        for position, item in enumerate(node.value):
            child = (*loc, position)
            document.lines[format_path(child)] = item.start_mark.line + 1
            _index(item, child, document)


def _duplicate_key(loc: Loc, first: int, again: int) -> Problem:
    return Problem(
        format_path(loc),
        f'the key "{loc[-1]}" appears twice (lines {first} and {again}); YAML keeps only the last',
        "remove one of the two",
        again,
    )


def _yaml_problem(err: yaml.YAMLError) -> Problem:
    mark = getattr(err, "problem_mark", None)
    what = str(getattr(err, "problem", None) or err)
    context = getattr(err, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    fix = "check the indentation (spaces only), colons and quotes on this line"
    if "'\\t'" in what or "\t" in what:
        fix = "indent with spaces: YAML does not allow tab characters for indentation"
    return Problem("", message, fix, mark.line + 1 if mark is not None else None)


def _not_an_object(path: str, data: object) -> Problem:
    kind = "list" if isinstance(data, list) else type(data).__name__
    return Problem(
        path,
        f"expected a Kubernetes object (a mapping with apiVersion, kind, metadata), got a {kind}",
        "write each YAML document as a mapping, e.g. apiVersion: ray.io/v1 / kind: RayCluster",
    )


def _count_problems(clusters: list[_Document], documents: list[_Document]) -> list[Problem]:
    if len(clusters) > 1:
        where = ", ".join(f'"{doc.name}" in document {doc.index}' for doc in clusters)
        return [
            Problem(
                "",
                f"found {len(clusters)} RayCluster documents ({where})",
                "keep one RayCluster per file (split the file, one cluster each)",
            )
        ]
    if not clusters:
        found = [f"{doc.kind} {doc.name}" for doc in documents if doc.kind is not None]
        also = f" (found: {', '.join(found)})" if found else ""
        return [
            Problem(
                "",
                f"no RayCluster document{also}",
                "add a document with apiVersion: ray.io/v1 and kind: RayCluster",
            )
        ]
    return []


def _config_maps(documents: list[_Document], problems: list[Problem]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for doc in documents:
        name = doc.name
        data = doc.data.get("data", {}) or {}
        where = f"{doc.prefix}.data"
        if not isinstance(data, Mapping):
            problems.append(
                Problem(where, "ConfigMap data must be a mapping", "write data: {file: content}")
            )
            continue
        bad = [key for key, value in data.items() if not isinstance(value, str)]
        for key in bad:
            problems.append(
                Problem(
                    f'{where}["{key}"]',
                    "ConfigMap values must be strings",
                    f'quote the value of "{key}", or use a block scalar (|)',
                    doc.line_of(format_path(("data", key))),
                )
            )
        if name in out:
            problems.append(
                Problem(
                    f"{doc.prefix}.metadata.name",
                    f'ConfigMap "{name}" is defined twice',
                    "rename one of them, or merge their data into one ConfigMap",
                )
            )
        out[name] = {str(key): value for key, value in data.items() if isinstance(value, str)}
    return out
