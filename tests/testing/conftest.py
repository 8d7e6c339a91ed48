"""Fixtures for the test-server suite.

`smtp_server` and `smtp_server_factory` come from the package's pytest11
entry point (trio_smtp.testing.pytest_plugin), exactly as users get them.
"""
