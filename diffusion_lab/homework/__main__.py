"""Instructor commands: student versions, grading, and format checks.

    python -m diffusion_lab.homework student book/*.ipynb --out student/
    python -m diffusion_lab.homework grade submissions/ --source book/ --out grades/ [--timeout 900] [--jobs 2]
    python -m diffusion_lab.homework validate book/*.ipynb

Grading runs each submission in a kernel of its own, in a sandbox where Linux namespaces are
available (--sandbox auto), and runs the checks in the grader's own process (see the "For
instructors" page of the book).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from . import grading, notebooks


def _positive(kind: type, *, allow_zero: bool = False):
    """An argparse type: a number of ``kind`` that is > 0 (or >= 0)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
                from None
        if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusion_lab.homework", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("student", help="write student versions: solutions replaced by stubs, checks kept")
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for the student notebooks")

    p = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<chapter>.ipynb into OUT/scores.csv")
    p.add_argument("submissions", type=Path)
    p.add_argument("--source", type=Path, required=True, help="folder of the instructor notebooks (e.g. book/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--timeout", type=_positive(float), default=900,
                   help="seconds per submitted notebook, kernel start included (default 900)")
    p.add_argument("--cell-timeout", type=_positive(float), default=300,
                   help="seconds per cell, and per check (default 300)")
    p.add_argument("--jobs", type=_positive(int), default=1, help="notebooks graded in parallel (default 1)")
    p.add_argument("--exercises-only", action="store_true",
                   help="run only the exercise cells (fast; the exercises are self-contained)")
    p.add_argument("--sandbox", choices=grading.SANDBOXES, default="auto",
                   help="auto: Linux namespaces where they work, else a plain process (with a warning); "
                        "namespaces: refuse to grade without them; none: a plain process (default auto)")
    p.add_argument("--memory", type=_positive(int, allow_zero=True), default=4096,
                   help="address-space limit of each kernel in MiB, 0 for none (default 4096)")
    p.add_argument("--cpu-seconds", type=_positive(int), default=None,
                   help="CPU-time limit of each kernel (default twice --timeout plus 60)")
    p.add_argument("--allow-read", action="append", default=[], metavar="PATH",
                   help="a directory a sandboxed kernel may also read (e.g. a data folder); repeatable")

    p = sub.add_parser("validate", help="check notebooks against the exercise format")
    p.add_argument("notebooks", nargs="+", type=Path)

    args = parser.parse_args(argv)
    if args.command == "student":
        args.out.mkdir(parents=True, exist_ok=True)
        for path in args.notebooks:
            nb = notebooks.student_version(nbformat.read(path, as_version=4))
            nbformat.write(nb, args.out / path.name)
            print(f"wrote {args.out / path.name}")
    elif args.command == "grade":
        if args.sandbox != "none":
            available = grading.probe_sandbox() is not None
            if args.sandbox == "namespaces" and not available:
                parser.error("--sandbox namespaces: the namespace sandbox does not start on this machine "
                             "(Linux with `unshare` and unprivileged user namespaces is needed)")
            print(f"sandbox: {'Linux namespaces' if available else 'none available, plain processes'}")
        scores = grading.grade(args.submissions, args.source, args.out, timeout=args.timeout,
                               cell_timeout=args.cell_timeout, jobs=args.jobs, exercises_only=args.exercises_only,
                               sandbox=args.sandbox, memory_mb=args.memory, cpu_seconds=args.cpu_seconds,
                               readonly=tuple(str(Path(p).resolve()) for p in args.allow_read))
        students = sorted({s.student for s in scores})
        print(f"graded {len(students)} students, {len(scores)} exercise scores: {args.out / 'scores.csv'}")
    elif args.command == "validate":
        for path in args.notebooks:
            exercises = notebooks.validate(nbformat.read(path, as_version=4))
            print(f"{path}: {len(exercises)} graded exercises ({', '.join(e.grade_id for e in exercises) or '-'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
