"""Print line and branch coverage separately (``make test`` runs it after the suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    out = Path(".coverage.json")
    subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)], check=True)
    totals = json.loads(out.read_text())["totals"]
    out.unlink()
    print(
        f"line coverage {totals['percent_statements_covered']:.1f}%, "
        f"branch coverage {totals['percent_branches_covered']:.1f}%"
    )


if __name__ == "__main__":
    main()
