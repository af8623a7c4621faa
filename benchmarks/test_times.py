"""Seconds per test file (and per chapter notebook) from a pytest JUnit XML report.

    pytest --nbval --junitxml=junit.xml                          # README's test command, with a report
    python benchmarks/test_times.py junit.xml                    # print the seconds per file
    python benchmarks/test_times.py junit.xml --record before    # store them as each file's before_s
    python benchmarks/test_times.py junit.xml --record after --note "load average 1.2"

A file's time is the sum of its test cases' times; pytest counts set-up and tear-down in them, so a
session fixture (the site build of tests/test_site.py) is charged to the file whose test first uses it.
``--record`` merges into benchmarks/results/test_times.json:

    {"files": {"tests/test_site.py": {"before_s": 227.1, "after_s": 155.8}, "book/04_training.ipynb": {...}},
     "runs": {"before": [{"report": ..., "timestamp": ..., "tests": ..., "total_s": ..., "note": ...}], "after": [...]},
     "machine": ..., "note": ...}

Each record updates only the files its report covers, and appends its run to ``runs``, so one file
measured alone and the whole suite measured later live side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "test_times.json"


def test_file(classname: str, root: Path = ROOT) -> str:
    """The file a JUnit ``classname`` comes from: ``tests.test_site`` -> ``tests/test_site.py``,
    ``tests.test_x.TestClass`` -> ``tests/test_x.py``, ``book.03_posterior.ipynb`` -> ``book/03_posterior.ipynb``."""
    parts = classname.split(".")
    if "ipynb" in parts:
        return "/".join(parts[: parts.index("ipynb")]) + ".ipynb"
    for k in range(len(parts), 0, -1):  # the longest prefix that is a file: the rest are classes
        candidate = "/".join(parts[:k]) + ".py"
        if (root / candidate).is_file():
            return candidate
    # A report from another checkout: test classes are CamelCase (TestX), modules are not.
    module = parts[: next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts))]
    return "/".join(module) + ".py"


def file_times(report: Path) -> tuple[dict[str, float], dict]:
    """Seconds per file, and a summary of the run (timestamp, host, tests, total seconds)."""
    tree = ET.parse(report)
    times: dict[str, float] = defaultdict(float)
    cases = 0
    for case in tree.iter("testcase"):
        name = case.get("file") or test_file(case.get("classname", ""))
        times[name] += float(case.get("time", 0))
        cases += 1
    suite = next(tree.iter("testsuite"))
    run = dict(report=report.name, timestamp=suite.get("timestamp"), hostname=suite.get("hostname"),
               tests=cases, total_s=round(float(suite.get("time", 0)), 1))
    return {k: round(v, 1) for k, v in sorted(times.items())}, run


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
              if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}"


def record(times: dict[str, float], run: dict, label: str, results: Path = RESULTS) -> dict:
    """Merge ``times`` into ``results`` as each file's ``<label>_s``; return the new contents."""
    data = json.loads(results.read_text()) if results.exists() else {}
    data.setdefault("note", "Seconds per test file (sum of its test cases, set-up included) from pytest's "
                            "JUnit report: benchmarks/test_times.py. Wall times on a shared machine; see each run's note.")
    data.setdefault("machine", machine())
    for name, seconds in times.items():
        data.setdefault("files", {}).setdefault(name, {})[f"{label}_s"] = seconds
    data.setdefault("runs", {}).setdefault(label, []).append(run)
    data["files"] = dict(sorted(data["files"].items()))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="pytest --junitxml report")
    parser.add_argument("--record", choices=["before", "after"], help=f"merge into {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--note", default=None, help="stored with the run, e.g. the load average")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    times, run = file_times(args.report)
    for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"{seconds:8.1f} s  {name}")
    print(f"{run['total_s']:8.1f} s  total ({run['tests']} tests)")
    if args.record:
        if args.note:
            run["note"] = args.note
        record(times, run, args.record, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
