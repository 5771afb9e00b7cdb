"""The picklescan call itself: run in a worker thread, or as a child process.

Kept apart from :mod:`civitai_tui.security.pickles` so that the child process
(``python -m civitai_tui.security.pickle_child FILE``, which prints the verdict as
JSON) imports picklescan and nothing else: no asyncio, no dataclasses of ours.
"""

from __future__ import annotations

import json
import sys


def scan(path: str) -> dict:
    """Run picklescan in strict mode and return a JSON-ready verdict."""
    from picklescan.scanner import SafetyLevel, scan_file_path

    result = scan_file_path(path, strict=True)
    return {
        "issues": result.issues_count,
        "error": "could not parse the file" if result.scan_err else None,
        "dangerous": [
            f"{g.module}.{g.name}" for g in result.globals if g.safety == SafetyLevel.Dangerous
        ],
        "globals": [f"{g.module}.{g.name}" for g in result.globals],
    }


if __name__ == "__main__":
    json.dump(scan(sys.argv[1]), sys.stdout)
