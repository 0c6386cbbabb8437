"""Audit requirements.lock against the Python advisory database (pip-audit), and say plainly
what could not be checked.

pip-audit asks PyPI (or OSV) for each pinned release's known vulnerabilities. Where that data
cannot be reached (an offline machine, a mirror without PyPI's JSON API), pip-audit skips the
package and would still print "No known vulnerabilities found": this script counts the skips
instead of hiding them. Exit status: 1 when a pinned release has a known vulnerability; 2 when
packages could not be checked and BACKOUT_AUDIT_REQUIRED=1 (CI with the advisory database in
reach); else 0, with the unchecked packages named on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def main() -> int:
    command = [
        sys.executable, "-m", "pip_audit",
        "--requirement", str(LOCK),
        "--no-deps", "--disable-pip", "--require-hashes",
        "--format", "json", "--progress-spinner", "off",
        "--vulnerability-service", os.environ.get("BACKOUT_AUDIT_SERVICE", "pypi"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        print(
            f"audit: pip-audit failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}",
            file=sys.stderr,
        )
        return 2
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    checked = len(dependencies) - len(skipped)
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            print(f"audit: {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    if vulnerable:
        print(f"audit: {len(vulnerable)} pinned release(s) with known vulnerabilities: raise them in "
              "pyproject.toml and re-lock (make lock)", file=sys.stderr)  # fmt: skip
        return 1
    if skipped:
        names = ", ".join(sorted(d["name"] for d in skipped)[:12])
        print(
            f"audit: NOT COMPLETE: {len(skipped)} of {len(dependencies)} pinned packages could not be checked "
            f"(advisory data unreachable: {skipped[0]['skip_reason']}); e.g. {names}",
            file=sys.stderr,
        )
        return 2 if os.environ.get("BACKOUT_AUDIT_REQUIRED") == "1" else 0
    print(f"audit: {checked} pinned packages checked, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
