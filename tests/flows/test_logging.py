"""Prefect's log of a failed stage: a user's bad input gets its one line, a bug keeps its traceback."""
from __future__ import annotations

import importlib
import logging

import pytest


def logged(exc: Exception) -> str:
    importlib.import_module("flows.pipeline")  # installs the filter
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record): lines.append(logging.Formatter().format(record))

    logger = logging.getLogger("prefect.task_runs")
    handler, level, propagate = Keep(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        try:
            raise exc
        except Exception:
            logger.error("Task run failed with exception: %r", exc, exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return "\n".join(lines)


@pytest.mark.parametrize("make", ["task", "ingest", "config"])
def test_user_errors_are_logged_without_a_traceback(make):
    from pipeline.configtypes import ConfigError
    from pipeline.ingest.readers import IngestError
    from pipeline.tasks.readers import TaskError
    exc = {"task": TaskError, "ingest": IngestError, "config": ConfigError}[make]("no usable rows in bad.csv")
    text = logged(exc)
    assert "no usable rows in bad.csv" in text and "Traceback" not in text


def test_a_bug_keeps_its_traceback():
    text = logged(KeyError("oops"))
    assert "KeyError('oops')" in text and "Traceback (most recent call last)" in text
