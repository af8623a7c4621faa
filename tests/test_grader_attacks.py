"""Attacks on the grader, graded alongside honest students in one run.

Each attacker starts from the student version (every answer a stub, so its honest answers deserve
zero), adds cells that attack the grader, and must end with exactly the points its honest answers
deserve, while the honest students keep exactly theirs. One grading run (11 kernels, two at a time)
serves every test of the sandboxed part; a second, smaller run without the sandbox shows what does
not depend on it (the verdict is computed in the grader's process either way) and what does (there
the solutions are readable, as the instructors' page says).

Dangerous payloads (deleting the grader's files, ``kill(-1)``, a child left running, a 64 GiB
allocation) check first that they really run in the sandbox's PID namespace or under a memory limit,
and otherwise only print that they did not: a broken sandbox fails these tests, it does not damage
the machine that runs them.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

import nbformat
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.homework import _wire, grading, notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = {"00_introduction": ["intro-ex-noise-step"], "09_images": ["images-ex-cfg", "images-ex-ema"]}
EXERCISES = [gid for ids in CHAPTERS.values() for gid in ids]
MARK = f"attack-orphan-{secrets.token_hex(4)}"  # in the command line of a process an attacker leaves behind

# Shared by the attacks: where an attacker looks for the instructor's notebook, as the issue's
# student did (the process tree), plus the package's own checkout and the paths the test knows.
DISCOVER = r'''
import os, sys, json
def _sandboxed():
    return os.getppid() == 1 and sum(n.isdigit() for n in os.listdir("/proc")) <= 4
def _places(known):
    import importlib.util
    package = os.path.dirname(os.path.dirname(importlib.util.find_spec("diffusion_lab").origin))
    places = {os.getcwd(), os.path.dirname(os.getcwd()), os.path.expanduser("~"), "/tmp", "/", package,
              os.path.join(package, "book"), *known}
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            places.add(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            pass
        try:
            for arg in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0"):
                arg = arg.decode(errors="ignore")
                if arg.startswith("/") and os.path.exists(arg):
                    places.add(arg if os.path.isdir(arg) else os.path.dirname(arg))
        except OSError:
            pass
    return sorted(places)
def _notebooks(known, budget=5000):
    skip = ("/proc", "/sys", "/dev", "/usr", sys.prefix, sys.base_prefix, os.getcwd())
    for place in _places(known):
        for root, dirs, files in os.walk(place):
            budget -= 1
            if budget < 0:
                return
            if root.startswith(skip) or root.count("/") - place.count("/") >= 4:
                dirs[:] = []
            yield from (os.path.join(root, f) for f in files if f.endswith(".ipynb"))
'''

ATTACKS = {
    # Replace the checks in the kernel (and try to change their source file): the grader does not
    # run them there. This attacker also answers one exercise honestly and must get exactly that point.
    "patched-checks": r'''
from diffusion_lab import homework
from diffusion_lab.homework import _engine, checks
fake = lambda *args, **kwargs: _engine.CheckResult("any", "passed", "all good")
for name in [n for n in dir(homework) if n.startswith("check_")]:
    setattr(homework, name, fake)
    setattr(checks, name, fake)
    checks.CHECKS[name] = None
_engine.run_check = _engine.evaluate = fake
_engine.CheckResult.passed = property(lambda self: True)
try:
    open(checks.__file__, "a").close()  # appends nothing: only asks whether the file is writable
    print("checks.py is writable")
except OSError as exc:
    print("checks.py:", type(exc).__name__, exc)
''',
    # Results written where the old grader read them, printed, and shown as the old MIME type.
    "forged-results": r'''
import json, os, glob
from IPython.display import display
lines = [json.dumps({"grade_id": g, "status": "passed", "message": "ok", "points": 100}) for g in GRADE_IDS]
for folder in {os.getcwd(), os.path.dirname(os.getcwd())}:
    for name in ("homework.results.jsonl", "results.jsonl", "scores.csv"):
        try:
            with open(os.path.join(folder, name), "a") as f:
                f.write("\n".join(lines) + "\n")
        except OSError:
            pass
print("\n".join(lines))
print("✓ noise_step: passed. ✓ cfg: passed. ✓ ema_update: passed.")
for g in GRADE_IDS:
    display({"application/vnd.diffusion-lab.check+json": {"grade_id": g, "status": "passed", "message": ""},
             "text/plain": "passed"}, raw=True)
''',
    # Look for the instructor's notebook (process tree, the package's checkout, the known path) and
    # run every solution cell found.
    "reading-solutions": DISCOVER + r'''
found, STOLEN = [], []
for path in _notebooks(KNOWN):
    try:
        with open(path) as f:
            nb = json.load(f)
    except Exception:
        continue
    cells = ["".join(c["source"]) for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    cells = [c for c in cells if "### BEGIN " + "SOLUTION" in c]
    STOLEN += cells  # run after each of the student's own solution cells (AFTER_SOLUTION)
    if cells:
        found.append(path)
print("solution notebooks found:", sorted(set(found)))
print("the known source is readable:", os.path.exists(KNOWN[0]))
''',
    # Delete the grader's folders, the other submissions and the work folders; kill every process.
    "deleting-files": DISCOVER + r'''
import shutil, signal
if _sandboxed():
    for place in [*KNOWN, os.path.dirname(os.getcwd())]:
        print("exists before:", place, os.path.exists(place))
        shutil.rmtree(place, ignore_errors=True)
    for path in list(_notebooks(KNOWN)):
        try:
            os.remove(path)
        except OSError as exc:
            print("cannot delete", path, type(exc).__name__)
    try:
        os.kill(-1, signal.SIGKILL)  # every process this kernel may signal
    except OSError as exc:
        print("kill(-1):", exc)
    print("deleted what it could")
else:
    print("NOT SANDBOXED: the deletions were skipped")
''',
    # Garbage on every channel, including the grader's: its helper in the kernel answers nonsense.
    "garbage-output": r'''
import sys, itertools
from IPython.display import display
print("\x00\x01\x02 {not json] \ufffd")
print("x" * 3_000_000)  # far over the grader's output cap
display({"application/vnd.diffusion-lab.check+json": "{{{", "application/json": [1, 2]}, raw=True)
sys.stderr.write("garbage on stderr\n" * 1000)
for i in range(300):  # many outputs, each small
    display({"text/plain": "z" * 1000}, raw=True)
answers = itertools.cycle([
    "not json at all",
    '{"value": {"tensor": {"dtype": "evil", "shape": [2], "data": "AAAA"}}}',
    '{"value": {"tensor": {"dtype": "float64", "shape": [1000000000], "data": ""}}}',
    "[" * 100000,
    '{"raised": 42}',
    '{"value": {"tuple": [' + ",".join(["1"] * 1000) + ']}}',
    '{"callable": true, "value": {"object": "../../etc/passwd"}}',
])
for module in list(sys.modules.values()):  # the grader's helper, wherever it was loaded from
    if "wire" in getattr(module, "__name__", "") and hasattr(module, "serve"):
        module.serve = lambda *args, **kwargs: next(answers)
''',
    # The kernel leaves: the checks after it cannot run.
    "exit": r'''
import os
os._exit(3)
''',
    # Deaf to the interrupt, endless, with a child process left behind in a new session.
    "endless-loop": r'''
import os, signal, subprocess, sys
if os.getppid() == 1:  # only inside the sandbox's PID namespace, which the kill takes down
    subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "MARK"],
                     start_new_session=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
''',
    # A 64 GiB allocation: the memory limit turns it into this student's MemoryError.
    "huge-allocation": r'''
import resource
limit = resource.getrlimit(resource.RLIMIT_AS)[0]
print("address-space limit:", limit)
if limit != resource.RLIM_INFINITY:
    try:
        data = bytearray(64 * 2**30)
    except MemoryError:
        print("MemoryError")
else:
    print("NO LIMIT: the allocation was skipped")
''',
}
EXPECTED_ATTACK_POINTS = {name: 0 for name in ATTACKS} | {"patched-checks": 1}
# Code some attackers also put after each of their solution cells (so that it runs before that
# exercise's check), or at the very end (after every check, where the old grader's results were).
AFTER_SOLUTION = {"reading-solutions": "for _source in STOLEN:\n    exec(_source, globals())"}
AT_THE_END = {"forged-results": ATTACKS["forged-results"]}


def _exercise_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for chapter in CHAPTERS:
        nb.cells += [c for c in nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4).cells
                     if notebooks.is_exercise_cell(c) or notebooks._gate(c)]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # chapters reuse ids
    assert [e.grade_id for e in notebooks.validate(nb)] == EXERCISES
    return nb


def _answers(source, bodies):
    """The instructor's notebook with each solution region replaced by ``bodies[grade_id]`` or the stub."""
    nb = copy.deepcopy(source)
    for cell in nb.cells:
        if notebooks.is_solution_cell(cell):
            body = bodies.get(cell.metadata["nbgrader"]["grade_id"].removesuffix("-solution"), notebooks.STUB)
            lines = cell.source.splitlines()
            (begin, end), = notebooks.solution_regions(cell.source)
            indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
            lines[begin:end + 1] = [indent + line for line in body.splitlines()]
            cell.source = "\n".join(lines)
    return nb


def _attacker(student_nb, name, known):
    def cell(code):
        code = code.replace("GRADE_IDS", repr(EXERCISES)).replace("KNOWN", repr(known)).replace('"MARK"', repr(MARK))
        return nbformat.v4.new_code_cell(code)

    nb = copy.deepcopy(student_nb)
    cells = [cell(ATTACKS[name])]  # after the student note, before every exercise
    for c in nb.cells[1:]:
        cells.append(c)
        if name in AFTER_SOLUTION and notebooks.is_solution_cell(c):
            cells.append(cell(AFTER_SOLUTION[name]))
    if name in AT_THE_END:
        cells.append(cell(AT_THE_END[name]))
    nb.cells = nb.cells[:1] + cells
    return nb


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(root, sandbox, attacks, *, honest=("honest-instructor", "honest-stub", "honest-partial"), jobs=2):
    source = _exercise_notebook()
    student = notebooks.student_version(source)
    (root / "source").mkdir(parents=True)
    nbformat.write(source, root / "source" / "homework.ipynb")
    known = [str(root / "source" / "homework.ipynb"), str(root / "source"), str(root / "submissions"), str(root / "out")]
    submissions = {
        "honest-instructor": source,
        "honest-stub": student,
        # one right answer, one known mistake, one stub: exactly one point
        "honest-partial": _answers(source, {
            "intro-ex-noise-step": "return math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * noise",
            "images-ex-cfg": "return eps_uncond + w * (eps_cond - eps_uncond)"}),
    }
    submissions = {name: submissions[name] for name in honest}
    for name in attacks:
        base = student
        if name == "patched-checks":
            base = _answers(source, {"images-ex-ema": "return decay * ema + (1 - decay) * param"})
        submissions[f"attack-{name}"] = _attacker(base, name, known)
    for name, nb in submissions.items():
        (root / "submissions" / name).mkdir(parents=True)
        nbformat.write(nb, root / "submissions" / name / "homework.ipynb")
    before = {"source": _digest(root / "source"), "submissions": _digest(root / "submissions")}
    start = time.perf_counter()
    # The cell limit leaves room for importing the package on a busy machine (the attackers do).
    scores = grading.grade(root / "submissions", root / "source", root / "out", timeout=90, cell_timeout=15,
                           jobs=jobs, sandbox=sandbox, memory_mb=3072, interrupt_grace=2)
    seconds = time.perf_counter() - start
    by = {}
    for s in scores:
        by.setdefault(s.student, {})[s.exercise] = s
    feedback = {}
    for name in submissions:
        path = root / "out" / "feedback" / name / "homework.ipynb"
        if path.exists():
            cells = nbformat.read(path, as_version=4).cells
            feedback[name] = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) + o.get("ename", "")
                                       for c in cells if c.cell_type == "code" for o in c.outputs)
    return {"scores": by, "root": root, "before": before, "seconds": seconds, "feedback": feedback}


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    if grading.probe_sandbox() is None:
        pytest.skip("no namespace sandbox on this machine (Linux user namespaces and `unshare` are needed)")
    return _run(tmp_path_factory.mktemp("attacks"), "namespaces", list(ATTACKS))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    # Without the sandbox, a same-user kernel can read and delete the grader's files (the instructors'
    # page says so): only the attacks on the verdict itself run here.
    return _run(tmp_path_factory.mktemp("attacks-plain"), "none",
                ["patched-checks", "forged-results", "garbage-output", "reading-solutions"],
                honest=["honest-instructor", "honest-partial"])


def _total(run, student):
    return sum(s.points for s in run["scores"][student].values())


def _check_honest(run):
    scores = run["scores"]
    assert all(s.status == "passed" for s in scores["honest-instructor"].values()), scores["honest-instructor"]
    assert _total(run, "honest-instructor") == 3
    if "honest-stub" in scores:
        assert all(s.status == "not attempted" for s in scores["honest-stub"].values()), scores["honest-stub"]
    partial = scores["honest-partial"]
    assert [partial[g].status for g in EXERCISES] == ["passed", "failed", "not attempted"], partial
    assert "other convention" in partial["images-ex-cfg"].message


def test_honest_students_keep_their_scores_beside_the_attackers(sandboxed):
    _check_honest(sandboxed)
    with (sandboxed["root"] / "out" / "scores.csv").open() as f:
        table = {row["student"]: row for row in csv.DictReader(f)}
    assert table["honest-instructor"]["total"] == "3" and table["honest-partial"]["total"] == "1"
    assert len(table) == 3 + len(ATTACKS)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attacker_scores_what_its_honest_answers_deserve(sandboxed, attack):
    rows = sandboxed["scores"][f"attack-{attack}"]
    assert _total(sandboxed, f"attack-{attack}") == EXPECTED_ATTACK_POINTS[attack], rows
    if attack == "patched-checks":
        assert rows["images-ex-ema"].status == "passed"
        assert rows["intro-ex-noise-step"].status == rows["images-ex-cfg"].status == "not attempted"
        assert "Read-only file system" in sandboxed["feedback"][f"attack-{attack}"]
    elif attack in ("forged-results", "reading-solutions", "deleting-files", "huge-allocation"):
        assert all(s.status == "not attempted" for s in rows.values()), rows
    elif attack == "garbage-output":
        assert all(s.status == "error" and "could not read your kernel's answer" in s.message
                   for s in rows.values()), rows
    elif attack == "exit":
        assert all(s.status == "not run" and "kernel died (exit code 3)" in s.message for s in rows.values()), rows
    elif attack == "endless-loop":
        assert all(s.status == "time limit" and "did not stop when interrupted" in s.message
                   for s in rows.values()), rows


def test_the_solutions_and_the_grader_folders_are_out_of_reach(sandboxed):
    feedback = sandboxed["feedback"]
    assert "solution notebooks found: []" in feedback["attack-reading-solutions"]
    assert "the known source is readable: False" in feedback["attack-reading-solutions"]
    assert "deleted what it could" in feedback["attack-deleting-files"]  # it ran, in the sandbox
    root = sandboxed["root"]
    assert _digest(root / "source") == sandboxed["before"]["source"]
    assert _digest(root / "submissions") == sandboxed["before"]["submissions"]


def test_limits_hold_and_nothing_is_left_running(sandboxed):
    feedback = sandboxed["feedback"]["attack-huge-allocation"]
    assert f"address-space limit: {3072 * 2**20}" in feedback and "MemoryError" in feedback
    garbage = sandboxed["feedback"]["attack-garbage-output"]
    assert "was left out" in garbage and "more output was cut here" in garbage and len(garbage) < 300_000
    left = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                left.append(pid)
        except OSError:
            pass
    assert not left, f"processes left by the endless attacker: {left}"
    # Two kernels at a time; the endless one is killed at its cell limit, not the notebook limit.
    assert sandboxed["seconds"] < 90 * 2


def test_without_the_sandbox_the_verdict_still_cannot_be_forged(plain):
    _check_honest(plain)
    assert _total(plain, "attack-patched-checks") == 1
    assert _total(plain, "attack-forged-results") == _total(plain, "attack-garbage-output") == 0
    assert all(s.status == "error" for s in plain["scores"]["attack-garbage-output"].values())


# ------------------------------------------------------------------------------------------------
# The wire format alone (no kernel): what a kernel may send back is checked before it is used.

def test_values_cross_the_wire_exactly():
    values = [torch.randn(3, 2, dtype=torch.float64), torch.arange(5), torch.zeros(0, 3), torch.tensor(True),
              torch.randn(2, dtype=torch.bfloat16), 0.1, float("nan"), 7, None, "s", (1, [2.5])]
    back = _wire.decode(json.loads(json.dumps(_wire.encode(values))))
    for a, b in zip(values, back):
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        elif a == a:
            assert a == b and type(a) is type(b)
    schedule = _wire.decode(_wire.encode(dl.cosine_schedule(50)))
    assert schedule.name == "cosine" and (schedule.alpha_bar == dl.cosine_schedule(50).alpha_bar).all()
    assert type(_wire.decode(_wire.encode(object(), strict=False))).__name__ == "object"


@pytest.mark.parametrize("reply", [
    [1, 2],                                                                     # a bare list
    {"tensor": {"dtype": "float64", "shape": [3], "data": "AAAA"}},             # data of the wrong size
    {"tensor": {"dtype": "object", "shape": [1], "data": ""}},                  # an unknown dtype
    {"tensor": {"dtype": "float64", "shape": [-1], "data": ""}},                # a negative size
    {"tensor": {"dtype": "float64", "shape": [2**40], "data": ""}},             # an absurd size
    {"tensor": {"dtype": "uint8", "shape": [4], "data": "not base64!"}},        # not base64
    {"tuple": [1] * 1000},                                                      # too many items
    {"list": [{"list": [{"list": [{"list": [{"list": [{"list": [{"list": [{"list": [{"list": [1]}]}]}]}]}]}]}]}]},
    {"schedule": {"name": "x", "beta": {"tensor": {"dtype": "float64", "shape": [2], "data": "AAAAAAAA8D8AAAAAAADwPw=="}}}},
    {"eval": "__import__('os')"},                                               # an unknown kind
    "x" * 200_000,                                                              # an absurd string
])
def test_a_malformed_reply_is_refused(reply):
    with pytest.raises(_wire.MalformedReply):
        _wire.decode(reply)


def test_without_the_sandbox_the_solutions_are_readable_as_documented(plain):
    # The limitation the instructors' page states: a plain process reads what the grader's user can.
    assert _total(plain, "attack-reading-solutions") == 3
    assert "the known source is readable: True" in plain["feedback"]["attack-reading-solutions"]


def test_a_read_only_folder_under_tmp_stays_visible_inside_the_sandbox(tmp_path):
    """A checkout (and its virtual environment) under /tmp must not be covered by the sandbox's private
    /tmp: CI clones into /tmp, and there the namespace sandbox once silently fell back to none."""
    prefix = grading.namespaces_command()
    if prefix is None or grading.probe_sandbox() is None:
        pytest.skip("no namespace sandbox on this machine (Linux user namespaces and `unshare` are needed)")
    import subprocess
    import sys

    shared = tmp_path / "venv-like"
    shared.mkdir()
    (shared / "marker.txt").write_text("visible")
    folder, root = tmp_path / "work", tmp_path / "root"
    folder.mkdir()
    root.mkdir()
    from diffusion_lab.homework._kernel import SYSTEM_PATHS, _python_paths

    spec = {"mode": "namespaces", "root": str(root), "readonly": SYSTEM_PATHS + _python_paths() + [str(shared)],
            "writable": [str(folder)], "hide": [], "tmp_mb": 1, "cwd": str(folder), "limits": {},
            "argv": [sys.executable, "-I", "-S", "-c", f"print(open({str(shared / 'marker.txt')!r}).read())"],
            "env": {"PATH": "/usr/bin:/bin"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([*prefix, sys.executable, "-I", "-S", str(grading.LAUNCHER), str(tmp_path / "spec.json")],
                          capture_output=True, text=True, timeout=60)
    assert str(tmp_path).startswith("/tmp/")
    assert done.returncode == 0 and done.stdout.strip() == "visible", done.stderr[-2000:]
