"""Grading a folder of submissions: full marks for the instructor solutions, zero for the student
version, a hint for each planted mistake, and time limits that stop endless submissions without
stopping the others. Each submission runs in a kernel of its own (sandboxed where the machine allows)
while the checks run in the grader, so the whole file takes about a minute (most of it kernels
importing torch). Attacks on the grader are in test_grader_attacks.py."""

import copy
import csv
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from diffusion_lab.homework import grading, notebooks

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

# One planted mistake per graded exercise, and a phrase its hint must contain. A new graded
# exercise needs an entry here (the test below says which one is missing).
PLANTED = {
    "intro-ex-noise-step": ("return (1 - beta) * x_prev + beta * noise", "variances"),
    "forward-ex-q-sample": ("ab = schedule.gather('alpha_bar', t, x0)\nreturn ab * x0 + (1 - ab).sqrt() * noise",
                            "you multiply `x0` by ᾱ_t"),
    "elbo-ex-gaussian-kl": ("return 0.5 * (torch.log(var1 / var2) + (var2 + (mean1 - mean2) ** 2) / var1 - 1)",
                            "not symmetric"),
    "posterior-ex-mean": ("import diffusion_lab as dl\nreturn dl.q_posterior(schedule, x0, x_t, t)[0]", "swapped"),
    "training-ex-ddpm-step": ("a, b = schedule.gather('alpha', t, x_t), schedule.gather('beta', t, x_t)\n"
                              "ab = schedule.gather('alpha_bar', t, x_t)\n"
                              "return (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + b.sqrt() * z",
                              "at t = 1 Algorithm 2 adds no noise"),
    "score-ex-langevin-step": ("return x + step_size * score + step_size ** 0.5 * z", "factor ½ is missing"),
    "sde-ex-reverse-drift": ("return f - 0.5 * dl.expand_like(g, f) ** 2 * score", "probability-flow ODE"),
    "sde-ex-ode-drift": ("return f - 0.5 * dl.expand_like(g, f) * score", "needs its square"),
    "ddim-ex-step": ("return (x_t - math.sqrt(1 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)", "you returned x̂₀"),
    "images-ex-cfg": ("return eps_uncond + w * (eps_cond - eps_uncond)", "other convention"),
    "images-ex-ema": ("return (1 - decay) * ema + decay * param", "swapped the weights"),
    "cscore-ex-dsm-target": ("return -(x_t - dl.expand_like(s, x0) * x0) / dl.expand_like(sigma, x0)",
                             "divides by the variance"),
    "consistency-ex-param": ("c_skip = sigma_data**2 / ((kappa - kappa_eps) ** 2 + sigma_data**2)\n"
                             "c_out = sigma_data * (kappa - kappa_eps) / math.sqrt(sigma_data**2 + kappa**2)\n"
                             "return c_out * y + c_skip * F", "swapped c_skip and c_out"),
    "variance-ex-interpolation": ("return dl.expand_like(beta, nu) * nu + dl.expand_like(beta_tilde, nu) * (1 - nu)",
                                  "interpolate their logarithms"),
    "translation-ex-inversion-step": ("return (x_prev - sigma_prev * eps_hat) / s_prev", "you returned x̂₀"),
    "dit-ex-patchify": ("return x.reshape(x.shape[0], -1, patch_size ** 2 * x.shape[1])", "you reshaped x directly"),
}
ENDLESS = "while True:\n    pass"
HANG = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)  # deaf to the interrupt\nwhile True:\n    pass"


def _exercise_notebook():
    """One notebook holding every graded exercise of the book (the cells are self-contained)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for path in sorted(BOOK.glob("*.ipynb")):
        nb.cells += [c for c in nbformat.read(path, as_version=4).cells
                     if notebooks.is_exercise_cell(c) or notebooks._gate(c)]  # code, and its {solution-start/end}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # chapters reuse ids
    return nb


def _replace_solution(cell, body):
    lines = cell.source.splitlines()
    (begin, end), = notebooks.solution_regions(cell.source)
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    lines[begin:end + 1] = [indent + line for line in body.splitlines()]
    cell.source = "\n".join(lines)


def _planted(nb, bodies):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "").removesuffix("-solution")
        if notebooks.is_solution_cell(cell) and grade_id in bodies:
            _replace_solution(cell, bodies[grade_id])
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    source = _exercise_notebook()
    exercises = notebooks.validate(source)
    missing = {e.grade_id for e in exercises} - set(PLANTED)
    assert not missing, f"add a planted mistake for {missing} to PLANTED"
    first = exercises[0].grade_id
    root = tmp_path_factory.mktemp("grading")
    (root / "source").mkdir()
    nbformat.write(source, root / "source" / "homework.ipynb")
    submissions = {
        "instructor": source,
        "student": notebooks.student_version(source),
        "planted": _planted(source, {k: v[0] for k, v in PLANTED.items()}),
        "endless": _planted(source, {first: ENDLESS}),  # only the first exercise loops forever
        "hang": _planted(source, {first: HANG}),        # ignores the interrupt: only the kill stops it
    }
    for student, nb in submissions.items():
        (root / "submissions" / student).mkdir(parents=True)
        nbformat.write(nb, root / "submissions" / student / "homework.ipynb")
    # A tampered check cell: the grader restores the instructor's check.
    tampered = copy.deepcopy(submissions["student"])
    for cell in tampered.cells:
        if notebooks.is_check_cell(cell):
            cell.source = "print('passed')"
    (root / "submissions" / "tamperer").mkdir()
    nbformat.write(tampered, root / "submissions" / "tamperer" / "homework.ipynb")
    (root / "submissions" / "absent").mkdir()  # submitted nothing
    start = time.perf_counter()
    scores = grading.grade(root / "submissions", root / "source", root / "out", timeout=75, cell_timeout=10, jobs=3)
    seconds = time.perf_counter() - start
    by = {}
    for s in scores:
        by.setdefault(s.student, {})[s.exercise] = s
    return {"scores": by, "exercises": exercises, "out": root / "out", "seconds": seconds}


def test_instructor_solutions_score_full_marks(graded):
    rows = graded["scores"]["instructor"]
    assert len(rows) == len(graded["exercises"]) >= 10
    assert all(s.status == "passed" and s.points == s.max_points for s in rows.values()), rows


@pytest.mark.parametrize("student", ["student", "tamperer"])
def test_student_version_scores_zero_as_not_attempted(graded, student):
    rows = graded["scores"][student]
    assert all(s.status == "not attempted" and s.points == 0 for s in rows.values()), rows


def test_every_planted_mistake_loses_its_points_with_a_hint(graded):
    for grade_id, s in graded["scores"]["planted"].items():
        assert s.points == 0 and s.status == "failed", s
        assert s.message.startswith("Hint:") and PLANTED[grade_id][1] in s.message, s.message


def test_an_endless_cell_is_interrupted_and_the_rest_still_graded(graded):
    rows = list(graded["scores"]["endless"].values())
    assert rows[0].status == "time limit" and rows[0].points == 0
    assert all(s.status == "passed" for s in rows[1:]), rows


def test_a_submission_deaf_to_interrupts_is_killed_and_others_are_graded(graded):
    rows = graded["scores"]["hang"].values()
    assert all(s.status == "time limit" and s.points == 0 for s in rows)
    assert graded["seconds"] < 75 * 2  # the kill came at the limit; the others ran beside it
    assert all(s.status == "missing" for s in graded["scores"]["absent"].values())


def test_score_table_is_one_row_per_student_and_one_column_per_exercise(graded):
    with (graded["out"] / "scores.csv").open() as f:
        table = {row["student"]: row for row in csv.DictReader(f)}
    assert set(table) == {"absent", "endless", "hang", "instructor", "planted", "student", "tamperer"}
    n = len(graded["exercises"])
    assert table["instructor"]["total"] == table["instructor"]["max"] == f"{n:g}"
    assert table["endless"]["total"] == f"{n - 1:g}" and table["student"]["total"] == "0"
    assert all(f"homework:{e.grade_id}" in table["planted"] for e in graded["exercises"])
    with (graded["out"] / "details.csv").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == 7 * n
    assert (graded["out"] / "feedback" / "planted" / "homework.ipynb").exists()


def test_a_whole_student_chapter_runs_without_errors(one_thread):
    nb = notebooks.student_version(nbformat.read(BOOK / "00_introduction.ipynb", as_version=4))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    checks = [c for c in nb.cells if notebooks.is_check_cell(c)]
    assert checks and all("not attempted" in c.outputs[0]["data"]["text/plain"] for c in checks)


def test_the_command_grades_an_unreadable_notebook_as_that_students_problem(tmp_path, capsys):
    from diffusion_lab.homework.__main__ import main

    (tmp_path / "source").mkdir()
    nbformat.write(_exercise_notebook(), tmp_path / "source" / "homework.ipynb")
    for student, data in {"broken": b"{not a notebook", "binary": bytes(range(256))}.items():
        (tmp_path / "submissions" / student).mkdir(parents=True)
        (tmp_path / "submissions" / student / "homework.ipynb").write_bytes(data)
    assert main(["grade", str(tmp_path / "submissions"), "--source", str(tmp_path / "source"),
                 "--out", str(tmp_path / "out"), "--exercises-only", "--sandbox", "none"]) == 0
    assert "graded 2 students" in capsys.readouterr().out
    with (tmp_path / "out" / "details.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["status"] == "unreadable" and r["points"] == "0" for r in rows)


def test_a_kernel_that_cannot_start_is_the_graders_error_not_the_students(tmp_path):
    source = _exercise_notebook()
    src = grading.Source("homework", source, tuple(notebooks.validate(source)))
    broken = grading.Settings(timeout=30, sandbox=("/bin/false",))  # a "sandbox" that exits at once
    rows = grading.grade_one("ada", nbformat.writes(source).encode(), src, tmp_path / "work", tmp_path / "private",
                             broken)
    assert rows and all(r.status == "grader error" and "could not start a kernel" in r.message for r in rows)
