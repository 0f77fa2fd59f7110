"""Read and write run policies as YAML or JSON, and export the run policy's JSON Schema.

Dumps write every field, defaults included: a policy stored with a condensed set must keep its meaning
even if a later pad-sdk changes a default. ``load_policy(dump_policy(p))`` equals ``p`` exactly.

Regenerate the committed schema with ``python -m policies._schema`` (a test fails when it is stale).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from policies.errors import PolicyFileError, short_repr
from policies.run import RunPolicy

Format = Literal["yaml", "json"]

#: Where the committed JSON Schema lives (editors and CI point at it).
SCHEMA_PATH = Path(__file__).parent / "schema" / "run_policy.schema.json"

_SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


#: The most values that aliases may add to a policy document. A real policy has well under a hundred
#: values; a 300-byte "billion laughs" document expands to 387 million (and, quoted in an error, gave a
#: 312 MB message).
MAX_ALIAS_EXPANSION = 10_000


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, alias bombs and recursive aliases, and reads ``1e-3`` as a number.

    PyYAML silently keeps the last of two equal keys (a reviewer's edit would vanish) and, following YAML
    1.1, reads ``1e-3`` (no dot) as text; both are surprises in a policy file. Aliases are allowed (a list
    shared by two sections), but what they add to the document is bounded by :data:`MAX_ALIAS_EXPANSION`,
    checked on the node graph before anything is constructed.
    """

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Raise a YAML error when aliases make ``root`` expand by more than MAX_ALIAS_EXPANSION values, or
    when an alias refers to a value that contains it.

    Each node's expanded size is computed once (aliases share nodes), so the check costs the size of the
    text, not of the expansion.
    """
    sizes: dict[int, int] = {}  # id(node) -> values in its expansion, for every distinct node
    open_nodes: set[int] = set()  # on the current path: meeting one again means a recursive alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
        elif key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a value that contains it (recursive alias)", node.start_mark
            )
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] - len(sizes) > MAX_ALIAS_EXPANSION:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"aliases expand the document by more than {MAX_ALIAS_EXPANSION} values (a policy needs far "
            "fewer; is it an alias bomb?)",
            root.start_mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _mapping_without_duplicates(loader: _PolicyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {short_repr(key)} (first given on line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        except TypeError:  # unhashable key: let SafeLoader raise its own error below
            break
    return yaml.SafeLoader.construct_mapping(loader, node, deep=True)


_PolicyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_policy(
    source: str | os.PathLike[str] | Mapping[str, Any] | RunPolicy, *, format: Format | None = None
) -> RunPolicy:
    """Load a run policy from a YAML/JSON file path, a mapping, or return a :class:`RunPolicy` unchanged.

    The file format follows the suffix (``.yaml``, ``.yml``, ``.json``) unless ``format`` is given.
    Raises :class:`PolicyFileError` (unreadable file, syntax error with file and line, duplicate key) or
    :class:`PolicyValidationError` (field path, message and allowed values for every problem).
    """
    if isinstance(source, RunPolicy):
        return source
    if isinstance(source, Mapping):
        return RunPolicy.validate_or_raise(dict(source), source="<mapping>")
    path = Path(source)
    fmt = format or _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise PolicyFileError(
            f"cannot tell the format from the suffix {path.suffix!r}; use .yaml, .yml or "
            ".json, or pass format='yaml' or 'json'",
            path=str(path),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"cannot read the policy file: {exc}", path=str(path)) from exc
    return parse_policy(text, format=fmt, source=str(path))


def parse_policy(text: str, *, format: Format = "yaml", source: str = "<string>") -> RunPolicy:
    """Parse policy text; ``source`` names it in errors (a file path, a URI)."""
    data = _parse(text, format, source)
    if not isinstance(data, Mapping):
        kinds = {list: "a list", str: "a single text value", int: "an integer", float: "a number"}
        kind = "empty" if data is None else kinds.get(type(data), type(data).__name__)
        raise PolicyFileError(
            f"the policy must be a mapping of sections (compression, bias, ...), but the document is {kind}",
            path=source,
        )
    return RunPolicy.validate_or_raise(dict(data), source=source)


def _parse(text: str, fmt: Format, source: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=_json_object_without_duplicates)
        except RecursionError as exc:
            raise PolicyFileError("invalid JSON: values nested too deeply", path=source) from exc
        except json.JSONDecodeError as exc:
            raise PolicyFileError(
                f"invalid JSON: {exc.msg}", path=source, line=exc.lineno, column=exc.colno
            ) from exc
        except ValueError as exc:  # duplicate key from the hook (no position is known)
            raise PolicyFileError(str(exc), path=source) from exc
    if fmt != "yaml":
        raise PolicyFileError(f"unknown format {short_repr(fmt)}; use 'yaml' or 'json'", path=source)
    try:
        return yaml.load(text, Loader=_PolicyLoader)  # a SafeLoader subclass: no arbitrary objects
    except RecursionError as exc:  # PyYAML composes recursively
        raise PolicyFileError("invalid YAML: values nested too deeply", path=source) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise PolicyFileError(f"invalid YAML: {problem}", path=source, line=line, column=column) from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"invalid YAML: {exc}", path=source) from exc


def _json_object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {short_repr(key)} in a JSON object")
        obj[key] = value
    return obj


def dump_policy(
    policy: RunPolicy, path: str | os.PathLike[str] | None = None, *, format: Format | None = None
) -> str:
    """Serialise ``policy`` (every field) and return the text; also write it to ``path`` when given.

    The format is ``format``, else the suffix of ``path``, else YAML. Files are written atomically
    (a temporary file renamed into place) so a reader never sees half a policy.
    """
    fmt: Format = format or (_SUFFIXES.get(Path(path).suffix.lower(), "yaml") if path else "yaml")
    data = policy.model_dump(mode="json")
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "yaml":
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    else:
        raise ValueError(f"unknown format {fmt!r}; use 'yaml' or 'json'")
    if path is not None:
        _write_atomic(Path(path), text)
    return text


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run policy file, for editors and CI checks.

    It carries types, ranges, choices and the one-of rule of ``compression``; the other cross-field rules
    (warn margins against limits, pruning against the keep share) are checked by :func:`load_policy` only.
    """
    schema = RunPolicy.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pad-sdk run policy",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """The schema exactly as committed to :data:`SCHEMA_PATH`."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_policy_schema(path: str | os.PathLike[str] | None = None) -> Path:
    """Write the schema (to :data:`SCHEMA_PATH` by default) and return where it went."""
    target = Path(path) if path is not None else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(target, schema_text())
    return target
