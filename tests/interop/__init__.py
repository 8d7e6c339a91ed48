"""The real-server interop suite: opt-in, see conftest.py and docs/interop.rst."""
