"""Write generated incidents to disk: `python -m attribution.nuisance FAMILY SEED N --out DIR`.

Each incident becomes DIR/<family>-<seed>-<index>/ with bundle.json (the input of
`backout attribute --input`), expected.json (the scenario-suite expectation) and
notes.txt (what was injected).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attribution.nuisance import FAMILIES, describe_family, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attribution.nuisance", description=__doc__)
    parser.add_argument("family", help=f"one of: {', '.join(FAMILIES)}, or 'list'")
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("n", type=int, nargs="?", default=1)
    parser.add_argument("--out", type=Path, default=Path("nuisance-incidents"))
    args = parser.parse_args(argv)
    if args.family == "list":
        for family in FAMILIES:
            print(f"{family}: {describe_family(family)}")
        return 0
    if args.family not in FAMILIES:
        print(f"error: unknown family {args.family!r}; known: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    for item in generate(args.family, args.seed, args.n):
        folder = args.out / f"{item.family}-{item.seed}-{item.index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bundle.json").write_text(json.dumps(item.to_json(), indent=1) + "\n")
        (folder / "expected.json").write_text(json.dumps(item.expected(), indent=2) + "\n")
        (folder / "notes.txt").write_text(item.describe() + "\n")
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
