"""Typed, validated configs built from frozen dataclasses, with no dependency beyond the stdlib.

Why not pydantic: the training entry point must run on a GPU box that has only torch, numpy, pyarrow and
sentencepiece. A config section is a frozen dataclass whose fields carry types (int, float, bool, str,
Literal[...], list[...], dict[str, ...], nested dataclasses, X | None) and optional bounds in `field(metadata=
{"ge": 0, "le": 1})`. `build()` turns plain dicts (YAML, JSON, ``--set`` overrides) into instances and names
the key, the value and what is allowed on any error."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Sequence, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A config value is unknown or invalid; the message names the key, the value and what is allowed."""


def config_path(root: Path, path: str | Path) -> Path:
    """A file a config names: ``~`` expanded, a relative path taken from the project root ``root``
    (an absolute one stays as it is)."""
    return Path(root) / Path(path).expanduser()


def existing_file(root: Path, path: str | Path, key: str) -> Path:
    """``config_path``, checked: a file the config names must exist, or the error names the key (at
    planning, before any stage runs)."""
    p = config_path(root, path)
    if not p.is_file():
        raise ConfigError(f"{key}: {str(path)!r} is a folder (resolved to {p.resolve()}); name a file" if p.is_dir()
                          else f"{key}: no file {str(path)!r} (resolved to {p.resolve()})")
    return p


def bounded(default: Any, *, ge: float | None = None, le: float | None = None,
            gt: float | None = None, lt: float | None = None, help: str = "") -> Any:
    """A dataclass field with numeric bounds checked by `build()`."""
    meta = {k: v for k, v in dict(ge=ge, le=le, gt=gt, lt=lt, help=help).items() if v not in (None, "")}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise ConfigError(f"{key}: got {value!r}, allowed: {', '.join(repr(a) for a in allowed)}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:  # an optional value: the one type's own reason (a YAML yes in a list of labels)
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: got {value!r}, expected {_describe(tp)}")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}, expected {_describe(tp)}")
        return build(tp, value, prefix=key)
    if origin in (list, tuple):
        if isinstance(value, str):  # one item ("paths: data/a,v2.txt" is one path); --set splits at commas
            value = [value] if value else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: got {value!r}, expected a list")
        (item_tp, *_) = get_args(tp) or (Any,)
        names = Counter(v.get("name") for v in value if isinstance(v, dict))
        items = [_coerce(item_tp, v, _item_key(key, i, v, names)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _coerce(val_tp, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key}: got {value!r}, expected a boolean (true/false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                    if f.is_integer():
                        return int(f)
                except ValueError:
                    pass
        raise ConfigError(f"{key}: got {value!r}, expected an integer")
    if tp is float:
        try:
            number = None if isinstance(value, bool) or not isinstance(value, (int, float, str)) else float(value)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number):  # (inf passed lr > 0 and trained NaN weights)
            return number
        raise ConfigError(f"{key}: got {value!r}, expected a {'finite ' if number is not None else ''}number")
    if tp is str:
        # YAML reads an empty value as null and yes/no/on/off as booleans: "None" or "True" is never meant.
        if value is None:
            raise ConfigError(f"{key}: got None, expected a string (an empty YAML value is null)")
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected a string (YAML reads yes/no/on/off/true/false "
                              "as booleans: quote the string)")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: got {value!r}, expected a string")
        return str(value)
    return value


def _check_bounds(f: dataclasses.Field, value: Any, key: str) -> None:
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    m = f.metadata
    checks = [("ge", lambda b: value >= b, ">="), ("le", lambda b: value <= b, "<="),
              ("gt", lambda b: value > b, ">"), ("lt", lambda b: value < b, "<")]
    for name, ok, sym in checks:
        if name in m and not ok(m[name]):
            raise ConfigError(f"{key}: got {value!r}, allowed: a number {sym} {m[name]}")


def build(cls: type, data: dict[str, Any] | None, prefix: str = "") -> Any:
    """Build a dataclass instance from a plain mapping, rejecting unknown keys and bad values."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]!s}; allowed keys{' in ' + prefix if prefix else ''}: "
                          f"{', '.join(fields)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = _coerce(hints[name], data[name], key)
        _check_bounds(f, value, key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as e:
        message = _qualified(str(e), prefix)
        if message == str(e):
            raise
        raise ConfigError(message) from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from e


def _qualified(message: str, prefix: str) -> str:
    """A ``__post_init__`` error message with its key made the full key under ``prefix``: a key that names
    the list but not the item ("ingest.sources.name" under the prefix "ingest.sources[0]") gets the index; a
    relative key ("min_words: …" under "clean") gets the prefix. A key already under the prefix, or one that
    names the item another way ("tasks.tasks[name].train") or another key of the same section, stays."""
    key = re.match(r"[^\s:]*", message).group()
    if not prefix or not key or key == prefix or key.startswith((prefix + ".", prefix + "[")):
        return message
    generic = re.sub(r"\[[^\]]*\]", "", prefix)  # "ingest.sources[0]" → "ingest.sources"
    if key == generic or key.startswith(generic + "."):
        return prefix + message[len(generic):]
    if re.split(r"[.\[]", key)[0] == re.split(r"[.\[]", prefix)[0]:  # already a full key of this section
        return message
    return f"{prefix}.{message}"


def to_dict(obj: Any) -> Any:
    """Plain JSON-able form of a config (dataclasses → dicts, tuples → lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


_NAME = re.compile(r"\w[\w.-]*")  # (an item whose name is not one is named by index: its own check names it)


def _item_key(key: str, i: int, value: Any, names: Counter) -> str:
    """How errors name a list's item: by its ``name`` when it has one ("tasks.tasks[sentiment].kind", as the
    item's own checks and ``--set`` name it), else by index ("ingest.sources[0].paths"): also when the name is
    a number (``--set`` reads one as an index) or another item's too (``--set`` would reach the first)."""
    name = value.get("name") if isinstance(value, dict) else None
    if isinstance(name, str) and _NAME.fullmatch(name) and not name.lstrip("-").isdigit() and names[name] == 1:
        return f"{key}[{name}]"
    return f"{key}[{i}]"


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
        tp = get_type_hints(klass)[name] if klass is not None and name in get_type_hints(klass) else Any
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


def non_default(obj: Any, keys: Sequence[str]) -> list[str]:
    """Of ``keys`` (dataclass fields of ``obj``), those whose value differs from the field's default."""
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(obj)}
    return [k for k in dict.fromkeys(keys) if getattr(obj, k) != defaults[k]]


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


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# A path whose file a stage's key holds by content (``key_config``): its spelling changes no key; plans show it.
BY_CONTENT = "(by content)"
SEED_LIMIT = 1 << 32  # every seed is in [0, 2**32): what numpy's Philox keys, torch and datasketch's MinHash all take

__all__ = ["ConfigError", "bounded", "build", "to_dict", "parse_override", "apply_override", "deep_merge",
           "non_default", "BY_CONTENT", "SEED_LIMIT"]
