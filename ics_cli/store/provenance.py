"""Where a result came from: the git commit of the ics checkout that made it."""

from __future__ import annotations

from pathlib import Path



def git_commit() -> str | None:
    """The commit of the ics checkout running (provenance of a run or a report), or None outside git."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
