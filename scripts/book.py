"""Maintain the book's notebooks: sync their install cell, and re-execute them in fresh kernels.

    python scripts/book.py execute                  # every chapter listed in _toc.yml
    python scripts/book.py execute book/04_training.ipynb
    python scripts/book.py sync                     # only rewrite the install cells
    python scripts/book.py check --report r.json    # run every chapter, write nothing back (GPU/Colab check)
    python scripts/book.py portability              # run every chapter under settings that emulate other CPUs

``check`` runs each chapter in a fresh kernel as ``execute`` does but leaves the notebooks alone:
it records each chapter's time and its first error (cell and message) in a JSON report and goes on
with the next chapter, which is how the chapters are checked in their GPU configuration.

``portability`` runs each chapter, without writing it back, once per setting of the numerical
kernels (``best``: this machine as it is; ``avx2``: ATen's AVX2 kernels, where the machine has
AVX-512; ``default``: ATen's scalar kernels; ``one-thread``: one OpenMP/MKL thread), compares every
cell's outputs with the stored ones as nbval does (``scripts/nboutputs.py``: sanitisers, ignored
cells, ``numeric_tolerance`` cells) and writes pass/fail, seconds and the differing cells per chapter
and setting to benchmarks/results/portability.json. A probe cell run before the chapter in the same
kernel records the thread count and ATen's CPU capability there, so the report shows that each
setting took effect.

``execute`` first syncs the install cell, then runs each notebook top to bottom in a fresh kernel
(as nbval will), stores the outputs in place and writes each chapter's wall time to
benchmarks/results/chapter_times.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbval.plugin import coalesce_streams

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nboutputs.py, also when this file is loaded by path
import nboutputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMES_FILE = ROOT / "benchmarks" / "results" / "chapter_times.json"
PORTABILITY_FILE = ROOT / "benchmarks" / "results" / "portability.json"
SANITIZERS = ROOT / "tests" / "nbval_sanitize.cfg"

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


class Setting(NamedTuple):  # not a dataclass: tests load this file by path, outside sys.modules
    """One way of running the numerical kernels: environment variables for the kernel process, and
    what the probe must then see inside it."""

    description: str
    env: dict[str, str] = {}
    threads: int | None = None  # also set by torch.set_num_threads in the probe cell
    capability: str | None = None  # torch.backends.cpu.get_cpu_capability() expected in the kernel


SETTINGS = {
    "best": Setting("this machine as it is: ATen's best vector ISA, torch's default thread count"),
    "avx2": Setting("ATen's AVX2 kernels: an x86-64 CPU without AVX-512 (run where the best is AVX-512)",
                    {"ATEN_CPU_CAPABILITY": "avx2"}, capability="AVX2"),
    "default": Setting("ATen's scalar (non-vectorised) kernels", {"ATEN_CPU_CAPABILITY": "default"},
                       capability="DEFAULT"),
    "one-thread": Setting("one OpenMP/MKL thread: reductions in one piece",
                          {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, threads=1),
}
PROBED_ENV = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PROBE = """\
# Portability probe, not part of the chapter: what the kernel runs with.
import json as _json, os as _os, sys as _sys, torch as _torch
{set_threads}print(_json.dumps(dict(threads=_torch.get_num_threads(), capability=_torch.backends.cpu.get_cpu_capability(),
                       python=_sys.executable, env={{_k: _os.environ.get(_k) for _k in {names!r}}})))
del _json, _os, _sys, _torch"""
TEXT_LIMIT = 2000  # characters of an expected or new output kept in the report


def _probe_cell(threads: int | None) -> nbformat.NotebookNode:
    set_threads = f"_torch.set_num_threads({threads})\n" if threads else ""
    return nbformat.v4.new_code_cell(PROBE.format(set_threads=set_threads, names=PROBED_ENV))


def _probe_result(cell: nbformat.NotebookNode) -> dict | None:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    return json.loads(text) if text.strip() else None


def _machine_capability() -> str:
    """ATen's best CPU capability on this machine (whatever this process's environment says)."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TEXT_LIMIT:
        return value[:TEXT_LIMIT] + f"... [{len(value) - TEXT_LIMIT} more characters]"
    return value


def run_under(path: Path, setting: Setting, sanitize: Callable[[Any], Any]) -> dict:
    """Run one chapter in a fresh kernel under ``setting``; compare its outputs with the stored ones."""
    stored = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(stored)
    for cell in nb.cells:  # what nbval does not run, or expects to raise, nbclient must treat alike
        options = nboutputs.nbval_options(cell) if cell.cell_type == "code" else {}
        tags = cell.metadata.setdefault("tags", [])
        if options.get("skip"):
            tags.append("skip-execution")
        if options.get("check_exception"):
            tags.append("raises-exception")
    nb.cells = [_probe_cell(setting.threads)] + nb.cells + [_probe_cell(None)]
    error, start = None, time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute(env={**os.environ, **setting.env})
    except CellExecutionError as err:
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(err).strip().splitlines()[-1])[:500]
    seconds = time.perf_counter() - start
    probe, probe_end, cells = _probe_result(nb.cells[0]), _probe_result(nb.cells[-1]), nb.cells[1:-1]
    failed_at = next((i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))
                      and not nboutputs.nbval_options(c)["check_exception"]), None)

    differences, within_tolerance = [], []
    for index, (old, new) in enumerate(zip(stored.cells, cells)):
        if failed_at is not None and index >= failed_at:
            break  # the error is the failure (as in nbval); later cells did not run
        if old.cell_type != "code" or old.execution_count is None:
            continue
        options = nboutputs.nbval_options(old)
        if options["skip"] or not options["check"]:
            continue
        ref = coalesce_streams(copy.deepcopy(old.outputs))
        test = coalesce_streams(copy.deepcopy(new.outputs))
        tolerance = nboutputs.cell_tolerance(old)
        if tolerance is not None:
            snapped = nboutputs.snap_within_tolerance(test, ref, tolerance, sanitize)
            if snapped != test:
                within_tolerance.append(index)
            test = snapped
        diff = nboutputs.first_difference(ref, test, sanitize)
        if diff is not None:
            differences.append({"cell": index, **{k: _cut(v) for k, v in diff.items()}})

    in_effect = probe is not None and all(
        want is None or probe[key] == want for key, want in (("threads", setting.threads), ("capability", setting.capability)))
    return dict(ok=error is None and not differences and in_effect, seconds=round(seconds, 1),
                kernel=probe, threads_at_end=probe_end and probe_end["threads"], setting_in_effect=in_effect,
                error=None if error is None else dict(cell=failed_at, message=error),
                differences=differences, within_tolerance=within_tolerance)


def portability(paths: list[Path], names: list[str], report: Path) -> int:
    """Run every chapter under every setting; write the report after each chapter; return the failures."""
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting {unknown[0]!r}; choose from: {', '.join(SETTINGS)}")
    import torch  # only to describe the machine

    sanitize = nboutputs.sanitizer(nboutputs.load_sanitizers(SANITIZERS))
    best = _machine_capability()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    result = dict(
        settings={n: dict(description=SETTINGS[n].description, env=SETTINGS[n].env) for n in names},
        machine=dict(cpu=cpu, cores=os.cpu_count(), best_capability=best, platform=platform.platform(),
                     python=platform.python_version(), torch=torch.__version__, load_average_at_start=os.getloadavg()),
        chapters={}, summary={})
    for path in paths:
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        rows = result["chapters"][name] = {}
        for setting in names:
            if setting == "avx2" and best != "AVX512":
                rows[setting] = dict(ok=None, skipped=f"this machine's best capability is {best}: the same as 'best'")
                continue
            rows[setting] = run_under(path, SETTINGS[setting], sanitize)
            row = rows[setting]
            print(f"{name} [{setting}] {'pass' if row['ok'] else 'FAIL'} in {row['seconds']} s; kernel {row['kernel']}; "
                  f"differing cells {[d['cell'] for d in row['differences']]}" + (f"; error {row['error']}" if row["error"] else ""),
                  flush=True)
        result["summary"] = _portability_summary(result["chapters"], names)
        result["machine"]["load_average_at_end"] = os.getloadavg()
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return sum(s["failed"] for s in result["summary"]["settings"].values())


def _portability_summary(chapters: dict, names: list[str]) -> dict:
    settings = {}
    for setting in names:
        rows = [(chapter, r[setting]) for chapter, r in chapters.items() if r[setting].get("ok") is not None]
        settings[setting] = dict(chapters=len(rows), passed=sum(r["ok"] for _, r in rows),
                                 failed=sum(not r["ok"] for _, r in rows),
                                 differing_cells={c: [d["cell"] for d in r["differences"]] for c, r in rows if r["differences"]},
                                 errors={c: r["error"] for c, r in rows if r["error"]},
                                 not_in_effect=[c for c, r in rows if not r["setting_in_effect"]])
    return dict(settings=settings, all_passed=all(s["failed"] == 0 for s in settings.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["execute", "sync", "check", "portability"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter in _toc.yml")
    parser.add_argument("--report", type=Path, default=None,
                        help=f"report file (check: chapter_check.json; portability: {PORTABILITY_FILE.relative_to(ROOT)})")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"portability's settings, comma-separated (default: all of {', '.join(SETTINGS)})")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.notebooks] or chapter_paths()
    if args.command == "check":
        return 1 if check(paths, args.report or Path("chapter_check.json")) else 0
    if args.command == "portability":
        return 1 if portability(paths, args.settings.split(","), args.report or PORTABILITY_FILE) else 0
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
