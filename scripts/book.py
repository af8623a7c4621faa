"""Maintain the book's notebooks: sync their install cell, and re-execute them in fresh kernels.

    python scripts/book.py execute                  # every chapter listed in _toc.yml
    python scripts/book.py execute book/04_training.ipynb
    python scripts/book.py sync                     # only rewrite the install cells
    python scripts/book.py check --report r.json    # run every chapter, write nothing back (GPU/Colab check)

``check`` runs each chapter in a fresh kernel as ``execute`` does but leaves the notebooks alone:
it records each chapter's time and its first error (cell and message) in a JSON report and goes on
with the next chapter, which is how the chapters are checked in their GPU configuration.

``execute`` first syncs the install cell, then runs each notebook top to bottom in a fresh kernel
(as nbval will), stores the outputs in place and writes each chapter's wall time to
benchmarks/results/chapter_times.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
TIMES_FILE = ROOT / "benchmarks" / "results" / "chapter_times.json"

INSTALL_CELL_TEMPLATE = '''\
# Installs diffusion_lab when it is missing (e.g. in Colab); does nothing where it is installed.
try:
    import diffusion_lab
except ImportError:
    %pip install --quiet "diffusion-lab[book] @ git+{url}"
    import importlib; importlib.invalidate_caches()  # let this running kernel see the new package
    import diffusion_lab'''


def repository_url() -> str:
    """The repository URL, written once in _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"]


def install_cell_source(url: str | None = None) -> str:
    return INSTALL_CELL_TEMPLATE.format(url=url or repository_url())


def chapter_paths() -> list[Path]:
    """The notebooks named in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def sync_install_cell(nb: nbformat.NotebookNode) -> bool:
    """Make the first cell the install cell; return True if the notebook changed.

    The cell is tagged ``remove-cell``: the rendered book does not show it (readers there need no
    install), while Colab and downloaded notebooks run it first.
    """
    source = install_cell_source()
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "code" or not first.source.startswith("# Installs diffusion_lab"):
        first = nbformat.v4.new_code_cell("")
        nb.cells.insert(0, first)
    before = (first.source, list(first.metadata.get("tags", [])))
    first.source = source
    first.metadata["tags"] = sorted(set(first.metadata.get("tags", [])) | {"remove-cell"})
    return (first.source, first.metadata["tags"]) != before


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    sync_install_cell(nb)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:  # keep diffs small: no per-cell execution metadata
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)  # live widgets need a kernel; the book shows static versions
    nbformat.write(nb, path)
    return seconds


def check(paths: list[Path], report: Path) -> int:
    """Execute each notebook without saving it; write times and errors to ``report``; return the failures."""
    import torch  # only to record the device the chapters ran on

    rows = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        name = str(path.relative_to(ROOT))
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            rows[name] = dict(ok=True, seconds=round(time.perf_counter() - start, 1))
        except CellExecutionError as err:
            cell = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                                  for o in c.get("outputs", []))), None)
            rows[name] = dict(ok=False, seconds=round(time.perf_counter() - start, 1), cell=cell,
                              error=re.sub(r"\x1b\[[0-9;]*m", "", str(err).strip().splitlines()[-1])[:500])
        print(name, rows[name], flush=True)
    report.write_text(json.dumps(dict(
        chapters=rows, machine=dict(platform=platform.platform(), python=platform.python_version(),
                                    torch=torch.__version__, cuda=torch.cuda.is_available(),
                                    gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None),
    ), indent=1) + "\n")
    return sum(not r["ok"] for r in rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["execute", "sync", "check"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter in _toc.yml")
    parser.add_argument("--report", type=Path, default=Path("chapter_check.json"), help="check's report file")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.notebooks] or chapter_paths()
    if args.command == "check":
        return 1 if check(paths, args.report) else 0
    if args.command == "sync":
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            if sync_install_cell(nb):
                nbformat.write(nb, path)
                print(f"synced {path.relative_to(ROOT)}")
        return 0
    times = json.loads(TIMES_FILE.read_text()) if TIMES_FILE.exists() else {}
    for path in paths:
        seconds = execute(path)
        name = str(path.relative_to(ROOT))
        times[name] = round(seconds, 1)
        print(f"executed {name} in {seconds:.1f} s", flush=True)
    times["_machine"] = f"{platform.machine()}, {platform.python_version()}, executed with nbclient"
    TIMES_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMES_FILE.write_text(json.dumps(dict(sorted(times.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
