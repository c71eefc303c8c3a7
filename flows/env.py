"""Environment defaults for fast, quiet, offline runs; applied before prefect or mlflow is imported.

Only variables the user has not set are changed. PREFECT_HOME sits in the project (not ~/.prefect),
the ephemeral Prefect server runs without analytics (its telemetry job races SQLite at start-up and
prints "database is locked" tracebacks) and without UI, and both tools' telemetry is off.
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder holding data/ and mlruns/: $LMFORGE_ROOT, else the current directory."""
    return Path(os.environ.get("LMFORGE_ROOT") or Path.cwd()).resolve()


def apply(root: Path) -> None:
    defaults = {
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
        # OpenMP threads sleep instead of spinning between parallel regions: on a shared machine a
        # spinning thread steals the core the other one needs (training steps measured 15x slower).
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
