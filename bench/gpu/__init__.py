"""The sections of ``bench/gpu_check.py``, the one prepared check for a session that gets a CUDA GPU.

Imported as ``bench.gpu.<module>`` with the repo root on sys.path (``bench`` is a namespace package; ``bench/``
itself must not be on sys.path, where ``bench/tokenize.py`` would shadow the stdlib). Section order, the summary
and the command line live in ``bench/gpu_check.py``.
"""
