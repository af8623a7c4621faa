"""The exercise format of the chapters, and their student versions (no solution left in them)."""

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from diffusion_lab.homework import notebooks

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_script", ROOT / "scripts" / "book.py")
book_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_script)
CHAPTERS = [p for p in book_script.chapter_paths() if p.suffix == ".ipynb"]

# Chapters that had graded exercises when the homework format was introduced; new chapters add theirs.
GRADED = ["00_introduction", "01_forward_process", "02_elbo", "03_posterior", "04_training",
          "05_score_matching", "06_sde", "07_ddim", "09_images", "12_continuous_score",
          "13_consistency", "14_learned_variance", "15_transformer_backbone", "16_translation"]


def _read(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_follows_the_exercise_format(path):
    exercises = notebooks.validate(_read(path))
    if path.stem in GRADED:
        assert exercises, f"{path.name} has no graded programming exercise"
    text = "".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    for ex in exercises:  # every graded exercise is a numbered {exercise} with a hidden solution
        assert re.search(r"```\{exercise\}.*\n:label: " + re.escape(ex.grade_id) + r"\n", text), ex.grade_id
        assert f"```{{solution-start}} {ex.grade_id}\n:class: dropdown" in text, ex.grade_id


def test_exercise_ids_are_unique_across_the_book():
    ids = [ex.grade_id for p in CHAPTERS for ex in notebooks.validate(_read(p))]
    assert len(ids) == len(set(ids))


def _defined_names(source):
    tree = ast.parse(source)
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_nothing_outside_an_exercise_uses_what_a_solution_defines(path):
    nb = _read(path)
    defined = set().union(*[_defined_names(c.source) for c in nb.cells if notebooks.is_solution_cell(c)])
    for cell in nb.cells:
        if cell.cell_type == "code" and not notebooks.is_exercise_cell(cell):
            python = TransformerManager().transform_cell(cell.source)  # IPython magics to plain Python
            used = {n.id for n in ast.walk(ast.parse(python)) if isinstance(n, ast.Name)}
            assert not used & defined, (path.name, used & defined)


def _solution_lines(nb):
    """Every line of solution code: in solution regions and in Markdown {solution} blocks."""
    lines, inside_gate = set(), False
    for cell in nb.cells:
        gate = notebooks._gate(cell)
        if gate:
            inside_gate = gate == "solution-start"
        elif cell.cell_type == "markdown" and inside_gate:  # explanations inside a gated solution
            lines.update(cell.source.splitlines())
        elif cell.cell_type == "code":
            src = cell.source.splitlines()
            for begin, end in notebooks.solution_regions(cell.source):
                lines.update(src[begin + 1:end])
        else:
            text = cell.source.splitlines()
            for first, last, name, _ in notebooks._fence_blocks(cell.source):
                if name == "solution":
                    lines.update(text[first + 1:last])
    return {line.strip() for line in lines}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_student_version_has_stubs_checks_and_no_solution(path):
    nb = _read(path)
    student = notebooks.student_version(nb)
    elsewhere = {line.strip() for c in notebooks.student_version(nb).cells for line in c.source.splitlines()}
    # Lines that also appear outside any solution in the instructor notebook (e.g. "import torch")
    # are not solution code; everything else of a solution must be gone.
    outside = {line.strip() for c in nb.cells if not notebooks.is_solution_cell(c)
               for line in c.source.splitlines() if c.cell_type == "code"}
    secret = {line for line in _solution_lines(nb) - outside if len(line) > 3 and not line.startswith("```")}
    if path.stem in GRADED or any("{solution" in c.source for c in nb.cells):
        assert secret  # a chapter with solutions has lines to hide (else the search below proves nothing)
    leaked = secret & elsewhere
    assert secret & {line.strip() for c in nb.cells for line in c.source.splitlines()}  # the search can find them
    assert not leaked, leaked
    assert "### BEGIN SOLUTION" not in str(student) and "{solution" not in str(student)
    student_checks = [c.source for c in student.cells if notebooks.is_check_cell(c)]
    assert student_checks == [c.source for c in nb.cells if notebooks.is_check_cell(c)]
    for cell in student.cells:
        if notebooks.is_solution_cell(cell):
            assert "raise NotImplementedError()" in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    nbformat.validate(student)


def test_student_version_of_a_synthetic_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("```{exercise} E\n:label: x-ex-e\n\nDo it.\n```\n\n"
                                              "```{solution} x-ex-e\n:class: dropdown\n\nSECRET_MD\n```\nAfter."),
                *notebooks.programming_cells("x-ex-f", "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n"
                                             "    return SECRET_CODE\n    ### END SOLUTION", "homework.check_cfg(f)")]
    student = notebooks.student_version(nb)
    text = "\n".join(c.source for c in student.cells)
    assert "SECRET_MD" not in text and "SECRET_CODE" not in text and "After." in text and "Do it." in text
    assert "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()" in text


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",                      # no END
    "### END SOLUTION",                                # END without BEGIN
])
def test_broken_markers_are_reported(source):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = notebooks.solution_metadata("x")
    nb.cells = [cell]
    with pytest.raises(notebooks.FormatError, match="cell 0"):
        notebooks.validate(nb)


def test_a_solution_region_outside_a_solution_cell_is_reported():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")]
    with pytest.raises(notebooks.FormatError, match="no nbgrader solution metadata"):
        notebooks.validate(nb)


def test_grader_restores_checks_appends_deleted_ones_and_can_keep_only_exercises():
    from diffusion_lab.homework import grading

    source = _read(ROOT / "book" / "06_sde.ipynb")
    submission = notebooks.student_version(source)
    checks = [c for c in submission.cells if notebooks.is_check_cell(c)]
    checks[0].source = "print('passed')"          # tampered
    submission.cells.remove(checks[1])             # deleted
    prepared = grading.prepare(submission, source)
    restored = [c.source for c in prepared.cells if notebooks.is_check_cell(c)]
    assert sorted(restored) == sorted(c.source for c in source.cells if notebooks.is_check_cell(c))
    assert prepared.cells[-1].source == checks[1].source  # appended at the end
    only = grading.prepare(submission, source, exercises_only=True)
    assert all(notebooks.is_exercise_cell(c) for c in only.cells) and len(only.cells) == 4


def test_every_check_cell_names_its_check_and_the_students_function():
    exercises = [ex for p in CHAPTERS for ex in notebooks.validate(_read(p))]
    assert {ex.check for ex in exercises} <= set(notebooks_checks())
    pairs = {ex.grade_id: (ex.check, ex.function) for ex in exercises}
    assert pairs["forward-ex-q-sample"] == ("check_q_sample", "q_sample")
    assert pairs["ddim-ex-step"] == ("check_ddim_step", "ddim_update")


def notebooks_checks():
    from diffusion_lab.homework.checks import CHECKS

    return CHECKS


@pytest.mark.parametrize(("source", "message"), [
    ("from diffusion_lab import homework\nhomework.check_q_sample(lambda *a: 0)", "by name"),
    ("from diffusion_lab import homework\nhomework.check_cfg(cfg)\nhomework.check_ema_update(ema)", "exactly one"),
    ("from diffusion_lab import homework\nhomework.check_nothing(f)", "unknown check"),
    ("from diffusion_lab import homework\nhomework.check_cfg(cfg", "not valid Python"),
])
def test_a_check_cell_the_grader_cannot_run_itself_is_reported(source, message):
    nb = nbformat.v4.new_notebook()
    nb.cells = notebooks.programming_cells("x-ex-f", "def cfg(c, u, w):\n    ### BEGIN SOLUTION\n    return c\n"
                                           "    ### END SOLUTION", source)
    with pytest.raises(notebooks.FormatError, match=message):
        notebooks.validate(nb)
