"""Fine-tuning tasks: their config (the ``tasks`` section), readers, default stdlib tasks and metrics."""
from pipeline.tasks.config import DEFAULT_AREAS, SPLITS, TaskConfig, TasksConfig, default_tasks

__all__ = ["DEFAULT_AREAS", "SPLITS", "TaskConfig", "TasksConfig", "default_tasks"]
