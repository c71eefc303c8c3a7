"""The optional C kernels of the clean stage; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the clean stage uses its pure
Python implementation (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("pipeline.clean._ctext", ["pipeline/clean/_ctext.c"], optional=True,
                             extra_compile_args=["-O2"])])
