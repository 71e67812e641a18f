"""Rewrite every expected-output JSON under tests/golden/ from the current code.

From the repository root:

    .venv/bin/python -m tests.golden.regenerate

then review what changed with `git diff tests/golden/` before committing it.
"""

from __future__ import annotations

import sys

from .cases import CASES, GOLDEN, output, render


def main() -> int:
    changed = 0
    for case in CASES:
        text = render(output(case))
        target = case.expected_path
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed += 1
            print(f"updated {target.relative_to(GOLDEN.parent.parent)}")
    known = {case.path for case in CASES} | {case.expected_path for case in CASES}
    strays = sorted(
        path
        for folder in {case.folder for case in CASES}
        for path in (GOLDEN / folder).iterdir()
        if path not in known
    )
    for path in strays:
        print(f"not in cases.py (add a row, or delete the file): {path.relative_to(GOLDEN)}")
    print(f"{changed} of {len(CASES)} expected files rewritten")
    return 1 if strays else 0


if __name__ == "__main__":
    sys.exit(main())
