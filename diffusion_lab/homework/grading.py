"""Grade a folder of submitted notebooks into a per-student, per-exercise score table.

Layout: ``SUBMISSIONS/<student>/<chapter>.ipynb``; the instructor notebooks (the book's chapters) are
in ``SOURCE/<chapter>.ipynb``. The verdict is computed where the student's code cannot reach it:

1. The grader reads every instructor notebook and every submission into memory before any student
   code runs, and takes the exercises (check name, the student's function name, points) from the
   **instructor's** check cells.
2. Each submission runs in a **fresh kernel of its own** (:mod:`._kernel`), started in a new
   temporary folder that holds only that submission, with a clean environment and resource limits
   (memory, CPU time, file size), and, where Linux namespaces are available (``sandbox="auto"``),
   in a sandbox (:mod:`._sandbox`) that shows it only the system and Python directories and its own
   folder: not the instructor's notebooks, not the other submissions, not the grader's folders or
   processes, no network. The student's code cells run in it one by one, each with a time limit.
3. Where the instructor's check cell stands, the grader does **not** run that cell in the kernel.
   It runs the check in its own process: the check's cases and the reference values are computed
   there, and every call of the student's function is sent to the kernel (the arguments as JSON,
   :mod:`._wire`), evaluated there, and its return value sent back and compared in the grader. So
   replacing ``homework.check_*`` in the kernel, printing "passed", writing files, or reading the
   check's source changes nothing; what the student's function returns is all that counts.
4. Whatever goes wrong in a kernel (it dies, hangs, ignores interrupts, floods its output, answers
   with something malformed) is scored for that student only: "error", "time limit" or "not run".

Outputs in ``OUT``: ``scores.csv`` (one row per student, one column per exercise, then total and
maximum), ``details.csv`` (one row per student and exercise, with the status and the hint), and
``feedback/<student>/<chapter>.ipynb`` (the submission with its outputs and the grader's results
under the check cells). Every file is written atomically.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import _engine, _wire
from ._kernel import LAUNCHER, CallFailed, KernelStopped, Limits, RemoteFunction, StudentKernel, namespaces_command
from .checks import CHECKS
from .notebooks import GradedExercise, _meta, is_check_cell, is_exercise_cell, validate

SANDBOXES = ("auto", "namespaces", "none")
MAX_NOTEBOOK_BYTES = 50 * 2**20


@dataclass(frozen=True)
class Score:
    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    status: str
    message: str


@dataclass(frozen=True)
class Settings:
    """How every submission runs (see :func:`grade`)."""

    timeout: float = 900
    cell_timeout: float = 300
    exercises_only: bool = False
    limits: Limits = Limits()
    sandbox: tuple[str, ...] | None = None  # the unshare prefix, or None for a plain process
    hide: tuple[Path, ...] = ()
    readonly: tuple[str, ...] = ()
    startup_timeout: float = 120
    interrupt_grace: float = 5


@dataclass(frozen=True)
class Source:
    """An instructor notebook, read once: its name, cells and graded exercises."""

    name: str
    notebook: nbformat.NotebookNode
    exercises: tuple[GradedExercise, ...]


def prepare(submission, source, *, exercises_only: bool = False) -> nbformat.NotebookNode:
    """The notebook to run: the submission with the instructor's check cells restored.

    A check cell is matched by ``grade_id``; a deleted one is appended at the end; a check cell the
    instructor never wrote is neutralised. Outputs are cleared. The check cells are not executed in
    the student's kernel: :func:`grade_one` runs each check in the grader where its cell stands.
    """
    checks = {_meta(c)["grade_id"]: c for c in source.cells if is_check_cell(c)}
    nb = copy.deepcopy(submission)
    seen = set()
    for cell in nb.cells:
        grade_id = _meta(cell).get("grade_id") if cell.cell_type == "code" else None
        if grade_id in checks and grade_id not in seen:
            cell.source = checks[grade_id].source
            cell.metadata = copy.deepcopy(checks[grade_id].metadata)
            seen.add(grade_id)
        elif is_check_cell(cell):  # a check cell the instructor never wrote (or a copy): do not run it
            cell.metadata["nbgrader"]["grade"] = False
            cell.source = "# (removed by the grader: not a check of this assignment)"
    for grade_id, cell in checks.items():
        if grade_id not in seen:
            nb.cells.append(copy.deepcopy(cell))
    if exercises_only:
        nb.cells = [c for c in nb.cells if is_exercise_cell(c)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


# ------------------------------------------------------------------------------------------------
# The sandbox.

_PROBE: dict[str, list[str] | None] = {}
_PROBE_LOCK = threading.Lock()


def probe_sandbox() -> list[str] | None:
    """The ``unshare`` command prefix if a namespace sandbox starts on this machine, else None."""
    with _PROBE_LOCK:
        if "result" not in _PROBE:
            _PROBE["result"] = _probe()
        return _PROBE["result"]


def _probe() -> list[str] | None:
    prefix = namespaces_command()
    if prefix is None:
        return None
    with tempfile.TemporaryDirectory(prefix="dlg-probe-") as tmp:
        folder, root = Path(tmp) / "work", Path(tmp) / "root"
        folder.mkdir()
        root.mkdir()
        from ._kernel import SYSTEM_PATHS, _python_paths

        spec = {"mode": "namespaces", "root": str(root), "readonly": SYSTEM_PATHS + _python_paths(),
                "writable": [str(folder)], "hide": [], "tmp_mb": 1, "cwd": str(folder), "limits": {},
                "argv": [sys.executable, "-I", "-S", "-c", "import os; print('sandbox', sum(n.isdigit() for n in os.listdir('/proc')) <= 3)"],
                "env": {"PATH": "/usr/bin:/bin"}}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            done = subprocess.run([*prefix, sys.executable, "-I", "-S", str(LAUNCHER), str(Path(tmp) / "spec.json")],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return prefix if done.returncode == 0 and done.stdout.strip() == "sandbox True" else None


def resolve_sandbox(sandbox: str) -> list[str] | None:
    """``"auto"``: namespaces where they work, else a plain process (with a warning); or either, forced."""
    if sandbox not in SANDBOXES:
        raise ValueError(f"sandbox must be one of {', '.join(SANDBOXES)}, got {sandbox!r}")
    if sandbox == "none":
        return None
    prefix = probe_sandbox()
    if prefix is None:
        if sandbox == "namespaces":
            raise RuntimeError("the namespace sandbox does not start on this machine (it needs Linux, `unshare` "
                               "and unprivileged user namespaces); use --sandbox none, or grade in a container")
        warnings.warn("no namespace sandbox on this machine: each kernel runs as a plain process with resource "
                      "limits, which can read whatever the grader's user can read (see the instructors' page)",
                      RuntimeWarning, stacklevel=3)
    return prefix


# ------------------------------------------------------------------------------------------------
# One submission.

def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _result_output(result: _engine.CheckResult) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("execute_result", data={"text/plain": repr(result)}, execution_count=None)


def _run_exercise(kernel: StudentKernel, exercise: GradedExercise, settings: Settings,
                  deadline: float) -> _engine.CheckResult:
    """The instructor's check, run here, on the student's function in the kernel."""
    spec = CHECKS[exercise.check]
    fn = exercise.function
    check_deadline = min(deadline, time.monotonic() + settings.cell_timeout)
    grace = min(settings.interrupt_grace, settings.cell_timeout)
    try:
        described = kernel.call(fn, {"describe": True}, max(0.0, check_deadline - time.monotonic()), grace=grace)
        if described.get("undefined") is True and len(described) == 1:
            return _engine.CheckResult(spec.name, "error", f"`{fn}` is not defined when its check runs: did the cell "
                                       "that defines it run without errors?")
        if set(described) != {"callable", "type"} or not isinstance(described["callable"], bool):
            raise CallFailed("error", f"the grader could not read your kernel's answer for `{fn}` (not a description "
                             "of a function); did your code change the kernel or the grader's helper?")
        if not described["callable"]:
            return _engine.CheckResult(spec.name, "error", f"expected a function {spec.signature}, got a "
                                       f"{str(described.get('type'))[:60]}.")
        proxy = RemoteFunction(kernel, fn, check_deadline, grace=grace)
        try:
            return _engine.evaluate(spec, proxy)
        except (CallFailed, KernelStopped):
            raise
        except Exception as exc:  # noqa: BLE001 - a returned value the comparison could not handle
            return _engine.CheckResult(spec.name, "error", f"the grader could not compare what `{fn}` returned "
                                       f"({type(exc).__name__}: {str(exc)[:200]})")
    except CallFailed as failed:
        return _engine.CheckResult(spec.name, failed.status, failed.message)


def grade_one(student: str, submission: bytes | None, source: Source, folder: Path, private: Path,
              settings: Settings, feedback: Path | None = None) -> list[Score]:
    """Grade one student's notebook in a kernel of its own; every exercise of ``source`` gets a score.

    ``folder`` (new, empty) becomes the kernel's working directory and holds only this submission;
    ``private`` holds the grader's files for this kernel (its log, the sandbox settings).
    """
    name, exercises = source.name, source.exercises
    found: dict[str, tuple[str, str]] = {}

    def scores(default_status: str, default_message: str) -> list[Score]:
        rows = []
        for ex in exercises:
            status, message = found.get(ex.grade_id, (default_status, default_message))
            points = ex.points if status == "passed" else 0.0
            rows.append(Score(student, name, ex.grade_id, points, ex.points, status, message))
        return rows

    if submission is None:
        return scores("missing", f"no {name}.ipynb was submitted")
    try:
        if len(submission) > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
        nb = prepare(nbformat.reads(submission.decode("utf-8"), as_version=4), source.notebook,
                     exercises_only=settings.exercises_only)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is this student's problem only
        return scores("unreadable", f"the notebook could not be read: {type(exc).__name__}: {str(exc)[:300]}")

    by_id = {ex.grade_id: ex for ex in exercises}
    folder.mkdir(mode=0o700, parents=True)
    (folder / f"{name}.ipynb").write_bytes(submission)  # the student's own copy, nothing else
    kernel = StudentKernel(folder, private, limits=settings.limits, sandbox=list(settings.sandbox or []) or None,
                           hide=list(settings.hide), readonly=list(settings.readonly))
    deadline = time.monotonic() + settings.timeout
    grace = min(settings.interrupt_grace, settings.cell_timeout)
    default = ("not run", "this check did not run")
    try:
        try:  # no student code has run yet: a failure here is the grader's (or the machine's), not theirs
            kernel.start(min(settings.startup_timeout, settings.timeout))
            schedules = any(_wire.uses_schedules(CHECKS[ex.check].cases()) for ex in exercises)
            setup = kernel.execute(_wire.setup_code(schedules=schedules), max(1.0, deadline - time.monotonic()),
                                   grace=grace, what="the grader's setup")
            if setup.status != "ok":
                raise KernelStopped("error", f"the grader's setup failed in the kernel: {setup.error}")
        except KernelStopped as stop:
            print(f"no kernel for {student}/{name}: {stop.message}", file=sys.stderr)
            default = ("grader error", f"the grader could not start a kernel for this notebook ({stop.message}); "
                       "grade it again")
            return scores(*default)
        for index, cell in enumerate(nb.cells):
            if time.monotonic() >= deadline:
                raise KernelStopped("time limit", f"the notebook ran past its time limit of {settings.timeout:g} s")
            if cell.cell_type != "code":
                continue
            grade_id = _meta(cell).get("grade_id")
            if is_check_cell(cell) and grade_id in by_id:
                result = _run_exercise(kernel, by_id[grade_id], settings, deadline)
                found[grade_id] = (result.status, result.message)
                cell.outputs = [_result_output(result)]
            elif not is_check_cell(cell):
                run = kernel.execute(cell.source, min(settings.cell_timeout, max(0.0, deadline - time.monotonic())),
                                     grace=grace, what=f"cell {index}")
                cell.outputs = run.outputs
    except KernelStopped as stop:
        default = ("time limit" if stop.status == "time limit" else "not run",
                   f"this check did not run: {stop.message}")
    finally:
        kernel.kill()
    if feedback is not None:
        try:
            _atomic_write(feedback / f"{name}.ipynb", nbformat.writes(nb))
        except Exception as exc:  # noqa: BLE001 - the scores stand even if the feedback cannot be written
            print(f"no feedback notebook for {student}/{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return scores(*default)


# ------------------------------------------------------------------------------------------------
# A folder of submissions.

def read_sources(source: Path, names: set[str] | None = None) -> list[Source]:
    """The instructor notebooks in ``source`` that have graded exercises (of ``names`` if given)."""
    sources = []
    for path in sorted(Path(source).glob("*.ipynb")):
        if names is not None and path.stem not in names:
            continue
        nb = nbformat.read(path, as_version=4)
        exercises = tuple(validate(nb))
        if exercises:
            sources.append(Source(path.stem, nb, exercises))
    return sources


def _read_submission(path: Path) -> bytes | None:
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return f.read(MAX_NOTEBOOK_BYTES + 1)


def grade(submissions: Path, source: Path, out: Path, *, timeout: float = 900, cell_timeout: float = 300,
          jobs: int = 1, exercises_only: bool = False, sandbox: str = "auto", memory_mb: int = 4096,
          cpu_seconds: int | None = None, readonly: tuple[str, ...] = (), startup_timeout: float = 120,
          interrupt_grace: float = 5) -> list[Score]:
    """Grade every ``SUBMISSIONS/<student>/<chapter>.ipynb`` against ``SOURCE/<chapter>.ipynb``.

    Args:
        timeout: seconds for one submitted notebook, kernel start included.
        cell_timeout: seconds for one cell, and for one check (all its calls of the student's function).
        jobs: notebooks graded at the same time (one kernel each).
        exercises_only: run only the exercise cells (they are self-contained): fast.
        sandbox: ``"auto"`` (namespaces where they work, else a plain process, with a warning),
            ``"namespaces"`` (fail if unavailable) or ``"none"``.
        memory_mb: address-space limit of each kernel (0: none); ``cpu_seconds``: its CPU-time limit
            (default twice ``timeout``); ``readonly``: more directories a sandboxed kernel may read.

    Writes ``OUT/scores.csv``, ``OUT/details.csv`` and ``OUT/feedback/``; returns the scores.
    Chapters are those that have graded exercises and that at least one student submitted.
    """
    submissions, source, out = Path(submissions).resolve(), Path(source).resolve(), Path(out).resolve()
    prefix = resolve_sandbox(sandbox)
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    submitted = {p.stem for s in students for p in (submissions / s).glob("*.ipynb")}
    sources = read_sources(source, submitted)
    # Everything is read before any student code runs: nothing a kernel does later can change it.
    tasks = [(student, src, _read_submission(submissions / student / f"{src.name}.ipynb"))
             for student in students for src in sources]
    out.mkdir(parents=True, exist_ok=True)
    # The kernels' Unix sockets live in their folders: keep the path short (sockets allow ~100 bytes).
    work = Path(tempfile.mkdtemp(prefix="dlg-", dir=None if len(tempfile.gettempdir()) < 40 else "/tmp"))
    os.chmod(work, 0o700)
    limits = Limits(memory_mb=memory_mb, cpu_seconds=int(cpu_seconds if cpu_seconds is not None else 2 * timeout + 60))
    settings = Settings(timeout=timeout, cell_timeout=cell_timeout, exercises_only=exercises_only, limits=limits,
                        sandbox=tuple(prefix) if prefix else None, hide=(submissions, source, out, work),
                        readonly=tuple(readonly), startup_timeout=startup_timeout, interrupt_grace=interrupt_grace)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(_grade_safely, student, data, src, work / f"s{i}", work / ".grader" / f"s{i}",
                                   settings, out / "feedback" / student)
                       for i, (student, src, data) in enumerate(tasks)]
            scores = [row for f in futures for row in f.result()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_tables(scores, out)
    return scores


def _grade_safely(student, data, src, folder, private, settings, feedback) -> list[Score]:
    """:func:`grade_one`; should the grader itself fail on one submission, only that one says so."""
    try:
        return grade_one(student, data, src, folder, private, settings, feedback)
    except Exception as exc:  # noqa: BLE001 - a bug of the grader must not cost the other students
        print(f"grader error on {student}/{src.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return [Score(student, src.name, ex.grade_id, 0.0, ex.points, "grader error",
                      f"the grader failed on this notebook ({type(exc).__name__}: {str(exc)[:200]}); "
                      "ask the instructor to grade it again") for ex in src.exercises]


def write_tables(scores: list[Score], out: Path) -> None:
    """``scores.csv``: student × exercise points, total, maximum; ``details.csv``: one row per score."""
    columns = list(dict.fromkeys(f"{s.notebook}:{s.exercise}" for s in scores))
    maximum = {f"{s.notebook}:{s.exercise}": s.max_points for s in scores}
    table: dict[str, dict[str, float]] = {}
    for s in scores:
        table.setdefault(s.student, {})[f"{s.notebook}:{s.exercise}"] = s.points
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["student", *columns, "total", "max"])
    for student, row in table.items():
        writer.writerow([student, *(f"{row.get(c, 0):g}" for c in columns),
                         f"{sum(row.values()):g}", f"{sum(maximum.values()):g}"])
    _atomic_write(out / "scores.csv", text.getvalue())
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["student", "notebook", "exercise", "points", "max_points", "status", "message"])
    for s in scores:
        writer.writerow([s.student, s.notebook, s.exercise, f"{s.points:g}", f"{s.max_points:g}", s.status, s.message])
    _atomic_write(out / "details.csv", text.getvalue())
