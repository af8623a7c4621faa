"""Instructor commands: student versions, grading, and format checks.

    python -m diffusion_lab.homework student book/*.ipynb --out student/
    python -m diffusion_lab.homework grade submissions/ --source book/ --out grades/ [--timeout 900] [--jobs 2]
    python -m diffusion_lab.homework validate book/*.ipynb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from . import grading, notebooks


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
    p.add_argument("--timeout", type=float, default=900, help="seconds per submitted notebook (default 900)")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell (default 300)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel (default 1)")
    p.add_argument("--exercises-only", action="store_true",
                   help="run only the exercise cells (fast; the exercises are self-contained)")

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
        scores = grading.grade(args.submissions, args.source, args.out, timeout=args.timeout,
                               cell_timeout=args.cell_timeout, jobs=args.jobs, exercises_only=args.exercises_only)
        students = sorted({s.student for s in scores})
        print(f"graded {len(students)} students, {len(scores)} exercise scores: {args.out / 'scores.csv'}")
    elif args.command == "validate":
        for path in args.notebooks:
            exercises = notebooks.validate(nbformat.read(path, as_version=4))
            print(f"{path}: {len(exercises)} graded exercises ({', '.join(e.grade_id for e in exercises) or '-'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
