"""model ← pipeline ← flows: prefect only under flows/, mlflow only in pipeline/tracking.py."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def files(pkg: str) -> list[Path]:
    return sorted((REPO / pkg).rglob("*.py"))


def test_packages_exist():
    assert files("pipeline") and files("flows")


def test_no_prefect_below_flows():
    bad = [str(p.relative_to(REPO)) for pkg in ("pipeline", "model") for p in files(pkg)
           if "prefect" in imported_modules(p)]
    assert bad == []


def test_mlflow_only_in_tracking_module():
    bad = [str(p.relative_to(REPO)) for pkg in ("pipeline", "model", "flows") for p in files(pkg)
           if "mlflow" in imported_modules(p) and p != REPO / "pipeline" / "tracking.py"]
    assert bad == []


def test_model_imports_no_pipeline_or_flows():
    bad = [str(p.relative_to(REPO)) for p in files("model")
           if imported_modules(p) & {"pipeline", "flows", "prefect", "mlflow"}]
    assert bad == []


def test_pipeline_imports_no_flows():
    bad = [str(p.relative_to(REPO)) for p in files("pipeline") if "flows" in imported_modules(p)]
    assert bad == []


def test_pipeline_imports_without_prefect_or_mlflow_loaded():
    code = ("import sys, importlib, pkgutil, pipeline\n"
            "for m in pkgutil.walk_packages(pipeline.__path__, 'pipeline.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('prefect', 'mlflow'))\n"
            "print(bad[:5]); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
