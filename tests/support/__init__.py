"""Helpers shared by tests/unit and tests/integration (cases, small CLI drivers).

Importable as `support` because pytest puts tests/ on sys.path: tests/conftest.py lives in a
directory without __init__.py (pytest's default prepend import mode). Nothing here starts a
binary or connects to anything.
"""
