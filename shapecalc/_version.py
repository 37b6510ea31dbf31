"""The release version: the one place it is written.

pyproject.toml reads it (``dynamic = ["version"]``), a release is tagged ``v`` + this
value, and ``tests/test_release.py`` keeps the README's pre-commit ``rev:`` and the
changelog's latest entry in step with it.
"""

__version__ = "0.1.0"
