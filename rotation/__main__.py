"""``python -m rotation`` runs the ``certrotate`` CLI."""

from __future__ import annotations

from rotation.entrypoints.cli import main

if __name__ == "__main__":
    main()
