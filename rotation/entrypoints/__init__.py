"""Entrypoints: the Functions blueprint and the ``certrotate`` CLI."""
