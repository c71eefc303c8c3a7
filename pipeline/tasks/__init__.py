"""Fine-tuning tasks: their config (the ``tasks`` section), readers, default stdlib tasks and metrics.

``load_task(cfg, root)`` gives a task's checked examples per split (``TaskData``) with its drops;
``held_out_units`` / ``doc_unit`` / ``test_texts`` tell decontamination what to keep out of the
pretraining corpus.
"""
from pipeline.tasks.config import DEFAULT_AREAS, SPLITS, TaskConfig, TasksConfig, default_tasks, fingerprint
from pipeline.tasks.heldout import doc_unit, held_out_units, test_texts
from pipeline.tasks.load import TaskData, load_task
from pipeline.tasks.readers import TaskError

__all__ = ["DEFAULT_AREAS", "SPLITS", "TaskConfig", "TasksConfig", "TaskData", "TaskError", "default_tasks",
           "fingerprint", "held_out_units", "doc_unit", "load_task", "test_texts"]
