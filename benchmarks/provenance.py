"""What a benchmark run measured: package versions and the git commit (no optional
imports, so every benchmark can record them)."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

__all__ = ["source_revision", "version"]


def version(distribution: str) -> str:
    """An installed distribution's version, or "absent"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def source_revision() -> str:
    """The git commit measured (``+dirty`` with local changes)."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--exclude=*"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
