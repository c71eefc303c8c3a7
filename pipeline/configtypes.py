"""Typed, validated configs built from frozen dataclasses, with no dependency beyond the stdlib.

Why not pydantic: the training entry point must run on a GPU box that has only torch, numpy, pyarrow and
sentencepiece. A config section is a frozen dataclass whose fields carry types (int, float, bool, str,
Literal[...], list[...], dict[str, ...], nested dataclasses, X | None) and optional bounds in `field(metadata=
{"ge": 0, "le": 1})`. `build()` turns plain dicts (YAML, JSON, ``--set`` overrides) into instances and names
the key, the value and what is allowed on any error (``--set`` overrides: ``pipeline.overrides``)."""
from __future__ import annotations

import dataclasses
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


def non_default(obj: Any, keys: Sequence[str]) -> list[str]:
    """Of ``keys`` (dataclass fields of ``obj``), those whose value differs from the field's default."""
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(obj)}
    return [k for k in dict.fromkeys(keys) if getattr(obj, k) != defaults[k]]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# A path whose file a stage's key holds by content (``key_config``): its spelling changes no key; plans show it.
BY_CONTENT = "(by content)"
SEED_LIMIT = 1 << 32  # every seed is in [0, 2**32): what numpy's Philox keys, torch and datasketch's MinHash all take

__all__ = ["ConfigError", "bounded", "build", "to_dict", "deep_merge",
           "non_default", "BY_CONTENT", "SEED_LIMIT"]
