"""What code produced a row: the package version and, where the code runs from a git checkout, the
commit (with ``+dirty`` when the checkout has uncommitted changes). Recorded in training-set
manifests, the model registry and every Delta commit's ``userMetadata``.

``LAKECART_CODE_COMMIT`` overrides the commit (an image built without ``.git`` sets it at build time).
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import lakecart

_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    if os.environ.get("LAKECART_CODE_COMMIT"):
        return os.environ["LAKECART_CODE_COMMIT"]
    if not (_ROOT / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def code_version() -> dict[str, str | None]:
    """``{"package": "0.1.0", "commit": "<sha>[+dirty]" or None}``."""
    return {"package": lakecart.__version__, "commit": git_commit()}


def commit_metadata(**extra: object) -> str:
    """A Delta commit's ``userMetadata``: the code version plus anything the writer adds (a job name)."""
    return json.dumps({"lakecart": code_version(), **extra}, sort_keys=True, default=str)
