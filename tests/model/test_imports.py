"""model/ depends on torch, safetensors and the standard library only (numpy allowed)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "model"
ALLOWED = {"torch", "numpy", "safetensors", "model", "__future__"}


def test_model_imports_only_torch_numpy_safetensors_and_stdlib():
    bad = {}
    for path in sorted(MODEL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            extra = roots - ALLOWED - set(sys.stdlib_module_names)
            if extra:
                bad[path.name] = sorted(extra)
    assert bad == {}
