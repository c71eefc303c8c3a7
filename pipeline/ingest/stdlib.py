"""The built-in default corpus: the Python standard library's own documentation and source.

Every Python ships it, so it needs no download. Docstrings are read with ``ast`` from the source files
rather than by importing modules (importing all of the stdlib has side effects: ``antigravity`` opens
a browser, ``this`` prints). Documents:
- one per pydoc topic (``pydoc_data.topics``: the language reference pages pydoc shows);
- one per module: a pydoc-like page of the module docstring and the signatures and docstrings of its
  classes, methods and functions (meta: module, area, n_docstrings).
The order is sorted by module path, so doc ids and content are stable for a given Python.
"""
from __future__ import annotations

import ast
import json
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3",
              "ensurepip", "turtledemo", "idlelib", "pydoc_data"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def fingerprint() -> str:
    """What the default corpus depends on: the Python version and the stdlib's location."""
    return f"python-{sys.version.split()[0]}:{stdlib_dir()}"


def module_files() -> list[tuple[str, Path]]:
    """(dotted module name, path) of the stdlib's Python modules, tests and tooling excluded."""
    root = stdlib_dir()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_PARTS & set(rel.parts) or any(p.startswith("test_") for p in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or parts[-1].startswith("_") and parts[-1] != "__main__" and len(parts) == 1:
            # private top-level modules (_pydecimal, _collections_abc...) are implementation copies
            continue
        out.append((".".join(parts), path))
    return out


def area(module: str) -> str:
    """The stdlib area of a module: its top-level package, or its own name."""
    return module.split(".")[0]


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    try:
        return f"{node.name}({ast.unparse(node.args)})"
    except Exception:  # pragma: no cover - unparse handles every valid tree
        return f"{node.name}(...)"


def docstrings(tree: ast.Module) -> Iterator[tuple[str, str, str]]:
    """(kind, qualified signature, docstring) of the module, its classes and (methods of) functions."""
    doc = ast.get_docstring(tree)
    if doc:
        yield "module", "", doc

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, str, str]]:
        for node in body:
            if isinstance(node, ast.ClassDef):
                d = ast.get_docstring(node)
                if d:
                    yield "class", f"class {prefix}{node.name}", d
                yield from walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and not node.name.startswith("_") or d and node.name == "__init__":
                    yield "function", prefix + _signature(node), d

    yield from walk(tree.body, "")


def module_page(module: str, source: str) -> tuple[str, int] | None:
    """The module's pydoc-like text and its number of docstrings, or None if it has none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    parts = [f"{module}\n"]
    n = 0
    for kind, sig, doc in docstrings(tree):
        n += 1
        parts.append(doc if kind == "module" else f"{sig}\n{_indent(doc)}")
    return ("\n\n".join(parts), n) if n else None


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


def iter_docs() -> Iterator[tuple[str, str, dict]]:
    """(local id, text, meta) for the stdlib_docs source."""
    from pydoc_data.topics import topics
    for name in sorted(topics):
        yield f"topic/{name}", topics[name], {"kind": "topic", "topic": name}
    root = stdlib_dir()
    for module, path in module_files():
        page = module_page(module, path.read_text(encoding="utf-8", errors="replace"))
        if page:
            text, n = page
            yield (f"module/{module}", text,
                   {"kind": "module", "module": module, "area": area(module), "n_docstrings": n,
                    "path": path.relative_to(root).as_posix()})


def iter_source() -> Iterator[tuple[str, bytes, dict]]:
    """(local id, raw bytes, meta) for the stdlib_source source: the modules' .py files."""
    root = stdlib_dir()
    for module, path in module_files():
        yield (f"source/{path.relative_to(root).as_posix()}", path.read_bytes(),
               {"kind": "source", "module": module, "area": area(module)})


def meta_json(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True, ensure_ascii=False)
