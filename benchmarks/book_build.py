"""Benchmark: build the book from its stored outputs (bar: ≤ 60 s) and weigh its pages (bar: ≤ 5 MB).

    python benchmarks/book_build.py

Writes benchmarks/results/book_build.json. A page's weight is its HTML plus the local scripts,
styles and images it references and the MathJax fonts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_site import _local_files, _pages  # noqa: E402  (one definition of a page's weight)

OUT = ROOT / "benchmarks" / "results" / "book_build.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jupyter_book = Path(sys.executable).parent / "jupyter-book"
        start = time.perf_counter()
        subprocess.run([str(jupyter_book), "build", "--nitpick", "--warningiserror", "--keep-going", "--path-output", tmp,
                        str(ROOT)], check=True, capture_output=True)
        seconds = time.perf_counter() - start
        site = Path(tmp) / "_build" / "html"
        fonts = sum(f.stat().st_size for f in (site / "_static" / "mathjax").rglob("*.woff"))
        weights = {p.relative_to(site).as_posix(): sum(f.stat().st_size for f in _local_files(p, site)) + fonts
                   for p in _pages(site)}
        site_bytes = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    result = dict(build_seconds=round(seconds, 1), bar_build_seconds=60, page_bytes=weights,
                  max_page_bytes=max(weights.values()), bar_page_bytes=5_000_000, site_bytes=site_bytes,
                  meets_build_bar=seconds <= 60, meets_page_bar=max(weights.values()) <= 5_000_000,
                  cpu_count=os.cpu_count(), note="wall clock of one build from stored outputs")
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "page_bytes"}, indent=2))


if __name__ == "__main__":
    main()
