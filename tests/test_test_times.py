"""benchmarks/test_times.py: seconds per test file and per chapter from a pytest JUnit report."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("test_times", ROOT / "benchmarks" / "test_times.py")
test_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test_times)

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" time="12.5" tests="6"
 timestamp="2026-01-01T00:00:00" hostname="vm">
<testcase classname="tests.test_site" name="test_a" time="1.25" />
<testcase classname="tests.test_site" name="test_b[x]" time="2.5" />
<testcase classname="tests.test_grading.TestGrade" name="test_c" time="0.5" />
<testcase classname="tests.test_grading" name="test_d" time="0.25" />
<testcase classname="book.03_posterior.ipynb" name="Cell 0" time="3.0" />
<testcase classname="book.03_posterior.ipynb" name="Cell 1" time="5.0" />
</testsuite></testsuites>"""


def test_times_are_summed_per_file_and_recorded_before_and_after(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(REPORT)
    times, run = test_times.file_times(report)
    assert times == {"book/03_posterior.ipynb": 8.0, "tests/test_grading.py": 0.8, "tests/test_site.py": 3.8}
    assert run["tests"] == 6 and run["total_s"] == 12.5

    results = tmp_path / "test_times.json"
    test_times.record({"tests/test_site.py": 227.0}, {"report": "site.xml"}, "before", results)
    data = test_times.record(times, run, "after", results)
    assert data["files"]["tests/test_site.py"] == {"before_s": 227.0, "after_s": 3.8}
    assert data["files"]["book/03_posterior.ipynb"] == {"after_s": 8.0}
    assert [r["report"] for r in data["runs"]["before"]] == ["site.xml"]
    assert json.loads(results.read_text()) == data
