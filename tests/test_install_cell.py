"""The first cell of every chapter installs diffusion_lab when it is missing, as a Colab user needs.

Simulated without a network: a local clone of this repository stands in for the configured GitHub
URL, and a fresh virtual environment sees this environment's packages (torch, IPython, ...) through
a folder of links that leaves out diffusion_lab.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_script", ROOT / "scripts" / "book.py")
book_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_script)


def _shadow_site_packages(target: Path) -> Path:
    """Links to every entry of this environment's site-packages except diffusion_lab's own."""
    target.mkdir()
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        if "diffusion_lab" in entry.name.lower() or entry.name.lower().startswith("diffusion-lab"):
            continue
        (target / entry.name).symlink_to(entry)
    return target


def _run_ipython(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    # IPython adds $VIRTUAL_ENV's site-packages to sys.path: point it at the interpreter's own.
    env = dict(os.environ, VIRTUAL_ENV=str(python.parent.parent),
               PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(python), "-m", "IPython", "--quick", "--no-banner", "-c", code],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to clone")
def test_install_cell_installs_the_package_when_it_is_missing(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # venv's bundled pip may predate `name @ git+file://` requirements; Colab's pip is recent.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    venv_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    shadow = _shadow_site_packages(tmp_path / "shadow")
    (venv_site / "outer_environment.pth").write_text(f"{shadow}\n")

    missing = _run_ipython(python, "import diffusion_lab", tmp_path)
    assert "ModuleNotFoundError" in missing.stdout + missing.stderr, "diffusion_lab must be missing at first"

    cell = book_script.install_cell_source().replace(book_script.repository_url(), f"file://{clone}")
    result = _run_ipython(python, cell + "\nprint('IMPORTED FROM', diffusion_lab.__file__)", tmp_path)
    assert f"IMPORTED FROM {venv_site}" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_install_cell_does_nothing_when_the_package_is_installed(tmp_path):
    # An unreachable URL: the cell must not even try to install.
    cell = book_script.install_cell_source("https://invalid.invalid/nothing-here")
    result = _run_ipython(Path(sys.executable), cell + "\nprint('OK', diffusion_lab.__version__)", tmp_path)
    assert "OK 0." in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert "pip" not in result.stdout.lower() + result.stderr.lower()
