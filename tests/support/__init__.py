"""Helpers shared by tests (never test_*.py files): import them as ``tests.support.<module>``."""
