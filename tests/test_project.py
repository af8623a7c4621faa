"""Checks on the book as a project: README and CI agree, notebooks are synced, executed and light."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_script", ROOT / "scripts" / "book.py")
book_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_script)

CHAPTERS = book_script.chapter_paths()
TEST_COMMAND = "pip install -r requirements.txt && pytest --nbval"
BUILD_COMMAND = "pip install -r requirements.txt && jupyter-book build --nitpick --warningiserror --keep-going ."


def test_readme_and_ci_run_the_same_two_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in (TEST_COMMAND, BUILD_COMMAND):
        assert command in readme
        assert f"({command})" in ci


def test_toc_lists_every_notebook_and_nothing_missing():
    on_disk = {p.resolve() for p in (ROOT / "book").glob("*.ipynb")}
    assert on_disk == {p.resolve() for p in CHAPTERS}
    assert len(CHAPTERS) >= 3


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_cell_installs_from_the_configured_repository(path):
    nb = json.loads(path.read_text())
    first = "".join(nb["cells"][0]["source"])
    assert first == book_script.install_cell_source()
    assert book_script.repository_url() in first
    assert first.count("import diffusion_lab") == 2  # try the import first; install only on failure


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_is_executed_in_order_without_errors_and_light(path):
    assert path.stat().st_size < 2_000_000
    nb = json.loads(path.read_text())
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), "re-run: python scripts/book.py execute"
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"stored error in {path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_ends_with_exercises_and_hidden_solutions(path):
    text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    labels = re.findall(r"```\{exercise\}.*\n:label: (\S+)", text)
    assert len(labels) >= 3
    for label in labels:
        # a plain {solution}, or a gated {solution-start} around code cells (programming exercises)
        assert re.search(r"```\{solution(-start)?\} " + re.escape(label) + r"\n:class: dropdown", text), label


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p.read_text() for p in (ROOT / "book").glob("*.md")] + [p.read_text() for p in CHAPTERS]
    cited = {k.strip() for s in sources for group in re.findall(r"\{cite[tp]?\}`([^`]+)`", s) for k in group.split(",")}
    assert cited and cited <= keys, cited - keys
