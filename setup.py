"""Build of the optional C encoder ``infersight._speedups``; all metadata is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler, no Python headers) the
install goes on without it and ``infersight._otlp_encode`` uses its pure-Python encoder."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("infersight._speedups", ["sdk/infersight/_speedups.c"], optional=True)])
