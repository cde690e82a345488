"""Reading a policy file's YAML (1.2 booleans, bounded size and nesting) and walking its
sections with the file, line and dotted field every error names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import PolicyError
from .values import MAX_FILE_BYTES, MAX_FLOW_DEPTH, Keys, _describe


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 `on:` (a schema key) would be True."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Source:
    """One policy file's text, its YAML node tree, and where each field sits."""

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display
        self.lines: dict[tuple[str, ...], int] = {}
        self.problems: list[PolicyError] = []

    def line_of(self, path: tuple[str, ...]) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: tuple[str, ...], message: str) -> PolicyError:
        return PolicyError(self.display, self.line_of(path), ".".join(path) or None, message)

    def index(self, node: yaml.Node, path: tuple[str, ...] = (), seen: set[int] | None = None):
        """Record each mapping key's line; report duplicate keys. Visits each node once."""
        seen = set() if seen is None else seen
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = (*path, key)
                if key in keys:
                    self.problems.append(
                        PolicyError(
                            self.display,
                            key_node.start_mark.line + 1,
                            ".".join(sub),
                            "duplicate key",
                        )
                    )
                keys.add(key)
                self.lines.setdefault(sub, key_node.start_mark.line + 1)
                self.index(value_node, sub, seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines.setdefault((*path, str(i)), item.start_mark.line + 1)
                self.index(item, (*path, str(i)), seen)


def _read_yaml(src: _Source) -> Any:
    try:
        raw = src.path.read_bytes()
    except OSError as e:
        raise PolicyError(src.display, None, None, f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError(src.display, None, None, f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(src.display, 1, None, "not UTF-8 text") from None
    _check_nesting(src, text)
    loader = None
    try:
        loader = _Loader(text)  # the reader checks the characters here already
        node = loader.get_single_node()
        if node is None:
            raise PolicyError(src.display, 1, None, "empty file: expected a mapping")
        src.index(node)
        if src.problems:
            raise src.problems[0]
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise PolicyError(src.display, line, None, f"invalid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise PolicyError(src.display, 1, None, f"invalid YAML: {e}") from None
    except RecursionError:
        raise PolicyError(src.display, 1, None, "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_nesting(src: _Source, text: str) -> None:
    """Refuse flow collections nested deeper than MAX_FLOW_DEPTH before parsing: PyYAML's
    scanner is quadratic in that depth and its composer recursive, so a few kilobytes of
    brackets would take seconds. Quoted scalars and comments are skipped; a bracket in a
    plain scalar may count, which no real policy comes near."""
    depth, quote, line = 0, "", 1
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            if quote == "#":
                quote = ""
        elif quote:
            if char == quote and quote != "#":
                quote = ""
        elif char in "'\"" or (char == "#" and previous in " \t\n"):
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                raise PolicyError(src.display, line, None, "invalid YAML: nested too deeply")
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char


class _Section:
    """A mapping at `path`, read as its `Keys` say: no unknown key, the required ones there,
    and each value through its key's parser."""

    def __init__(self, src: _Source, path: tuple[str, ...], value: Any, spec: Keys):
        self.src, self.path, self.spec = src, path, spec
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise src.error(path, f"expected a mapping, got {_describe(value)}")
        allowed = tuple(spec.keys)
        for key in value:
            if key not in allowed:
                raise src.error(
                    (*path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
                )
        self.value = value
        for key, message in spec.required.items():
            if key not in value:
                raise src.error((*path, key), message)
        if spec.any_of and not any(k in value for k in spec.any_of[0]):
            raise src.error(path, spec.any_of[1])
        if spec.one_of and sum(k in value for k in spec.one_of[0]) != 1:
            raise src.error(path, spec.one_of[1])
        if spec.alone and spec.alone[0] in value and len(value) > 1:
            raise src.error((*path, spec.alone[0]), spec.alone[1])

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self.value:
            return default
        try:
            return self.spec.keys[key].parse(self.value[key])
        except ValueError as e:
            raise self.src.error((*self.path, key), str(e)) from None

    def section(self, key: str) -> _Section:
        return _Section(self.src, (*self.path, key), self.value.get(key), self.spec.keys[key])
