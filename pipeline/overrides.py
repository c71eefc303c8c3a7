"""``--set key=value`` overrides: a key path (a list item by index or by name) and a value of the field's type,
applied to the plain config data (a preset and config files merged) before ``configtypes.build`` checks it."""
from __future__ import annotations

import dataclasses
import json
import re
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from pipeline.configtypes import ConfigError, _coerce, to_dict


_ITEM = re.compile(r"^([^\[\]]+)\[([^\[\]]+)\]$")  # "sources[0]", "tasks[stdlib_area]"


def _key_parts(key: str) -> list[str]:
    """``a.b[x.y].c`` → ["a", "b[x.y]", "c"]: dots inside an item selector do not split."""
    return [p for p in re.split(r"\.(?![^\[]*\])", key.strip()) if p]


def _item_type(tp: Any) -> Any:
    """A list field's item type (``list[X]``, ``list[X] | None``, ``tuple[X, ...]``), else None."""
    if _allows_none(tp):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return (get_args(tp) or (Any,))[0] if get_origin(tp) in (list, tuple) else None


def _field_type(cls: type, path: list[str], full: str) -> Any:
    tp: Any = cls
    for i, part in enumerate(path):
        inner = tp
        if get_origin(inner) in (Union, types.UnionType):
            inner = next(a for a in get_args(inner) if a is not type(None))
        if get_origin(inner) is dict:
            tp = get_args(inner)[1] if get_args(inner) else Any
            continue
        if not dataclasses.is_dataclass(inner):
            raise ConfigError(f"unknown key {full}: {'.'.join(path[:i])} has no sub-keys")
        names = [f.name for f in dataclasses.fields(inner)]
        item = _ITEM.match(part)
        name = item.group(1) if item else part
        if name not in names:
            where = ".".join(path[:i])
            raise ConfigError(f"unknown key {full}; allowed keys{' in ' + where if where else ''}: {', '.join(names)}")
        tp = get_type_hints(inner)[name]
        if item:
            tp = _item_type(tp)
            if tp is None:
                raise ConfigError(f"{full}: {'.'.join(path[:i] + [name])} is not a list; [...] selects a list item")
    return tp


def _default_name(tp: Any) -> str | None:
    """The ``name`` an item of type ``tp`` has when its mapping gives none (the dataclass default)."""
    klass = _dataclass_of(tp)
    f = next((f for f in dataclasses.fields(klass) if f.name == "name"), None) if klass is not None else None
    return f.default if f is not None and isinstance(f.default, str) else None


def _find_item(items: list, selector: str, key: str, default_name: str | None = None) -> int:
    """The index an item selector names: a 0-based index (negative from the end), or the item whose
    ``name`` is the selector (``default_name`` for an item that sets none)."""
    if re.fullmatch(r"-?\d+", selector):
        i = int(selector)
        if not -len(items) <= i < len(items):
            raise ConfigError(f"{key}: no item {i}; the list has {len(items)} item(s)")
        return i % len(items)
    names = [it.get("name", default_name) if isinstance(it, dict) else None for it in items]
    named = [i for i, n in enumerate(names) if n == selector]
    if not named:
        names = [str(n) for n in names if n is not None]
        raise ConfigError(f"{key}: no item named {selector!r}; names: {', '.join(names) or 'none'} "
                          "(or select by index, e.g. [0])")
    return named[0]


def apply_override(cls: type, data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key=value`` to the plain config ``data`` (a preset and config files merged). A
    list item is reached by index or by name: ``ingest.sources[0].max_docs=10``, ``tasks.tasks[stdlib_area]
    .max_train=200``, ``finetune.methods[1]=lora``. A list the files do not set starts from the field's
    default (``cls``'s), so an item of a default list can be changed alone."""
    path, value = parse_override(cls, assignment)
    node: Any = data
    tp: Any = cls
    for depth, part in enumerate(path):
        item = _ITEM.match(part)
        name = item.group(1) if item else part
        here = ".".join(path[:depth + 1])
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {'.'.join(path[:depth]) or 'the config'} is not a mapping")
        klass = _dataclass_of(tp)
        tp = get_type_hints(klass).get(name, Any) if klass is not None else Any
        if not item:
            if depth == len(path) - 1:
                node[name] = to_dict(value)  # plain data, as a config file's: a later --set can reach into it
            else:
                node = node.setdefault(name, {})
            continue
        if name not in node:
            node[name] = to_dict(_field_default(klass, name))
        items = node[name]
        if not isinstance(items, list):
            raise ConfigError(f"cannot set {'.'.join(path)}: {'.'.join(path[:depth] + [name])} is not a list")
        tp = _item_type(tp)
        i = _find_item(items, item.group(2), here, _default_name(tp))
        if depth == len(path) - 1:
            items[i] = to_dict(value)
        else:
            node = items[i]


def _dataclass_of(tp: Any) -> type | None:
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return tp if dataclasses.is_dataclass(tp) else None


def _field_default(klass: type | None, name: str) -> Any:
    f = next(f for f in dataclasses.fields(klass) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return [] if f.default is dataclasses.MISSING or f.default is None else list(f.default)


def _split_assignment(assignment: str) -> tuple[str, str]:
    """``key=value`` at the first ``=`` outside an item selector (``sources[a=b].max_docs=3``)."""
    m = re.match(r"((?:[^=\[]|\[[^\]]*\])*)=(.*)$", assignment, re.S)
    return (m.group(1), m.group(2)) if m else assignment.split("=", 1)


def parse_override(cls: type, assignment: str) -> tuple[list[str], Any]:
    """Parse ``a.b=value`` into a key path and a value of the field's type (JSON for lists/mappings)."""
    key, raw = _split_assignment(assignment) if "=" in assignment else ("", "")
    if not key.strip():
        raise ConfigError(f"--set expects key=value, got {assignment!r}{': no key before =' * ('=' in assignment)}")
    path = _key_parts(key)
    tp = _field_type(cls, path, key.strip())
    value: Any = raw
    inner = next(a for a in get_args(tp) if a is not type(None)) if _allows_none(tp) else tp  # list[X] | None
    wants_structure = get_origin(inner) in (list, tuple, dict) or dataclasses.is_dataclass(inner)
    if raw.strip().lower() in ("null", "none") and _allows_none(tp):
        value = None
    elif wants_structure and raw.strip()[:1] in ("[", "{"):  # an empty value is an empty list, below
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            value = _yaml_flow(raw)  # [full, lora] or {a: [x]}: YAML's flow style, unquoted
            if value is None:
                raise ConfigError(f"{key}: cannot parse {raw!r} as JSON ({e}) or as a YAML list or mapping; "
                                  "e.g. a,b or '[\"a\", \"b\"]' or '[a, b]'") from e
    elif _is_list(tp):  # the command line's short form of a list: a,b,c (a YAML string is one item)
        value = [v.strip() for v in raw.split(",") if v.strip()]
    return path, _coerce(tp, value, key.strip())


def _yaml_flow(raw: str) -> list | dict | None:
    import yaml
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, (list, dict)) else None


def _is_list(tp: Any) -> bool:
    if _allows_none(tp):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return get_origin(tp) in (list, tuple)


def _allows_none(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


__all__ = ["apply_override", "parse_override"]
