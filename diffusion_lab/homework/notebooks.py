"""The exercise format of the book's notebooks, and the student version of a notebook.

The format (any chapter can adopt it; the "For instructors" page shows an example):

* **Written exercises**: a Markdown ```` ```{exercise} Title ```` block with ``:label: <chapter>-ex-<name>``,
  followed by ```` ```{solution} <label> ```` with ``:class: dropdown`` (sphinx-exercise). The student
  version deletes the solution blocks.
* **Programming exercises**: the ``{exercise}`` block states the task and the function's signature;
  then a gated, hidden solution and a visible check::

      [markdown]  ```{solution-start} <label>
                  :class: dropdown
                  ```
      [code]      def q_sample(schedule, x0, t, noise):         <- the *solution cell*
                      ### BEGIN SOLUTION
                      ...
                      ### END SOLUTION
      [markdown]  ```{solution-end}
                  ```
      [code]      from diffusion_lab import homework            <- the *check cell*
                  homework.check_q_sample(q_sample)

  The solution cell carries nbgrader's metadata ``{"solution": true, "grade": false, "locked": false,
  "grade_id": "<label>-solution", "schema_version": 3}``; the check cell carries ``{"solution": false,
  "grade": true, "locked": true, "points": <n>, "grade_id": "<label>", "schema_version": 3}``. Both
  cells are self-contained (they import what they use and use nothing else the chapter defined), and
  nothing outside them uses names the solution cell defines, so the student version runs top to bottom
  and the grader may run the exercise cells alone. :func:`programming_cells` writes this metadata.

The student version (:func:`student_version`) replaces every solution region by a stub that raises
``NotImplementedError``, deletes Markdown solutions (plain and gated), clears every output, and keeps
the check cells, so each check reports "not attempted" until the student writes code.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
SCHEMA_VERSION = 3
_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}(?P<arg>.*)$")


class FormatError(ValueError):
    """A notebook does not follow the exercise format; the message names the cell and the problem."""


@dataclass(frozen=True)
class GradedExercise:
    """A programming exercise as the grader sees it: its check cell's id and points, the check it
    calls and the name of the student's function it passes (``homework.check_q_sample(q_sample)``)."""

    grade_id: str
    points: float
    check_source: str
    check: str = ""
    function: str = ""


def check_call(source: str) -> tuple[str, str]:
    """``(check, function)`` of a check cell that calls ``homework.check_<name>(<function>)`` once.

    The grader does not run the check cell in the student's kernel; it runs that check itself, on
    the function of that name in the kernel. So the call must be this simple; anything else is a
    FormatError.
    """
    from .checks import CHECKS

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise FormatError(f"the check cell is not valid Python ({exc.msg})") from None
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and (node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                  ).startswith("check_")]
    if len(calls) != 1:
        raise FormatError(f"a check cell must call exactly one homework.check_<name>(function), found {len(calls)}")
    call, = calls
    name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
    if name not in CHECKS:
        raise FormatError(f"unknown check {name!r}; the checks are {', '.join(sorted(CHECKS))}")
    if len(call.args) != 1 or call.keywords or not isinstance(call.args[0], ast.Name):
        raise FormatError(f"{name} must be called with the student's function by name, e.g. {name}(my_function)")
    return name, call.args[0].id


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(_meta(cell).get("solution"))


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(_meta(cell).get("grade"))


def is_exercise_cell(cell) -> bool:
    return is_solution_cell(cell) or is_check_cell(cell)


def solution_metadata(label: str) -> dict:
    return {"grade": False, "grade_id": f"{label}-solution", "locked": False,
            "schema_version": SCHEMA_VERSION, "solution": True, "task": False}


def check_metadata(label: str, points: float = 1) -> dict:
    return {"grade": True, "grade_id": label, "locked": True, "points": points,
            "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def programming_cells(label: str, solution: str, check: str, *, points: float = 1) -> list:
    """The four cells after an ``{exercise}`` block: gated solution (hidden), solution code, end, check."""
    start = nbformat.v4.new_markdown_cell(f"```{{solution-start}} {label}\n:class: dropdown\n```")
    code = nbformat.v4.new_code_cell(solution)
    code.metadata["nbgrader"] = solution_metadata(label)
    end = nbformat.v4.new_markdown_cell("```{solution-end}\n```")
    test = nbformat.v4.new_code_cell(check)
    test.metadata["nbgrader"] = check_metadata(label, points)
    return [start, code, end, test]


def solution_regions(source: str) -> list[tuple[int, int]]:
    """Line ranges ``(begin, end)`` (inclusive, marker lines) of the solution regions of a code cell."""
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if stripped == BEGIN:
            if begin is not None:
                raise FormatError(f"nested {BEGIN!r} at line {i + 1}")
            begin = i
        elif stripped == END:
            if begin is None:
                raise FormatError(f"{END!r} without {BEGIN!r} at line {i + 1}")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise FormatError(f"{BEGIN!r} at line {begin + 1} has no {END!r}")
    return regions


def stub_source(source: str) -> str:
    """Replace each solution region by the stub, indented like the ``BEGIN`` marker."""
    lines = source.splitlines()
    for begin, end in reversed(solution_regions(source)):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        lines[begin:end + 1] = [indent + stub_line for stub_line in STUB.splitlines()]
    return "\n".join(lines)


def _fence_blocks(text: str) -> list[tuple[int, int, str, str]]:
    """Top-level directive blocks in Markdown: (first line, last line, directive name, argument)."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if m:
            fence = m.group("fence")
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence:
                j += 1
            blocks.append((i, min(j, len(lines) - 1), m.group("name"), m.group("arg").strip()))
            i = j + 1
        else:
            i += 1
    return blocks


def strip_markdown_solutions(text: str) -> str:
    """Delete ``{solution}`` blocks (and their one blank line before) from Markdown."""
    lines = text.splitlines()
    for first, last, name, _ in reversed(_fence_blocks(text)):
        if name == "solution":
            if first > 0 and not lines[first - 1].strip():
                first -= 1
            del lines[first:last + 1]
    return "\n".join(lines).rstrip() + ("\n" if text.endswith("\n") else "")


def _gate(cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    names = [name for _, _, name, _ in _fence_blocks(cell.source)]
    for gate in ("solution-start", "solution-end"):
        if gate in names:
            if names != [gate] or cell.source.strip().count("\n") > 2:
                raise FormatError(f"a {{{gate}}} directive must be alone in its Markdown cell: {cell.source[:80]!r}")
            return gate
    return None


def validate(nb) -> list[GradedExercise]:
    """Check a notebook against the format and return its graded exercises, in order."""
    exercises, seen, inside_gate = [], set(), False
    for index, cell in enumerate(nb.cells):
        where = f"cell {index}"
        gate = _gate(cell)
        if gate == "solution-start":
            if inside_gate:
                raise FormatError(f"{where}: {{solution-start}} inside another gated solution")
            inside_gate = True
        elif gate == "solution-end":
            if not inside_gate:
                raise FormatError(f"{where}: {{solution-end}} without {{solution-start}}")
            inside_gate = False
        if cell.cell_type != "code":
            continue
        try:
            regions = solution_regions(cell.source)
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from None
        if regions and not is_solution_cell(cell):
            raise FormatError(f"{where} has a solution region but no nbgrader solution metadata "
                              "(use homework.notebooks.solution_metadata)")
        if is_solution_cell(cell) and not regions:
            raise FormatError(f"{where} is a solution cell without {BEGIN!r} ... {END!r}")
        if is_solution_cell(cell) and not inside_gate:
            raise FormatError(f"{where}: a solution cell must sit between {{solution-start}} and {{solution-end}}")
        grade_id = _meta(cell).get("grade_id")
        if is_exercise_cell(cell):
            if not grade_id or not re.fullmatch(r"[A-Za-z0-9_-]+", grade_id) or grade_id in seen:
                raise FormatError(f"{where}: grade_id {grade_id!r} is missing, invalid or not unique")
            seen.add(grade_id)
        if is_check_cell(cell):
            if "homework.check_" not in cell.source:
                raise FormatError(f"{where}: a check cell must call a check of diffusion_lab.homework")
            try:
                check, function = check_call(cell.source)
            except FormatError as exc:
                raise FormatError(f"{where}: {exc}") from None
            exercises.append(GradedExercise(grade_id, float(_meta(cell).get("points", 1)), cell.source,
                                            check, function))
    if inside_gate:
        raise FormatError("a {solution-start} has no {solution-end}")
    return exercises


STUDENT_NOTE = (
    "**Student version.** The solutions of this chapter's exercises are removed. In each programming "
    "exercise, write your code where `raise NotImplementedError()` stands and run the check cell below "
    "it: it says whether your function is right and, if not, gives a hint."
)


def student_version(nb) -> nbformat.NotebookNode:
    """A copy of ``nb`` with solutions replaced by stubs, Markdown solutions deleted and outputs cleared."""
    validate(nb)
    out = copy.deepcopy(nb)
    cells, inside_gate = [], False
    for cell in out.cells:
        gate = _gate(cell)
        if gate:
            inside_gate = gate == "solution-start"
            continue
        if cell.cell_type == "markdown":
            if inside_gate:
                continue  # explanations inside a gated solution are solutions too
            cell.source = strip_markdown_solutions(cell.source)
        elif cell.cell_type == "code":
            if is_solution_cell(cell):
                cell.source = stub_source(cell.source)
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    position = 1 if cells and cells[0].cell_type == "code" and "remove-cell" in cells[0].metadata.get("tags", []) else 0
    cells.insert(position, nbformat.v4.new_markdown_cell(STUDENT_NOTE))
    out.cells = cells
    return out
