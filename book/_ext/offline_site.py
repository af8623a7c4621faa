"""Make the built site work offline and load cleanly: local MathJax, no duplicated scripts.

Serve MathJax from the built site itself, so pages render maths from file:// with no network.
MathJax 3.2.2 comes from the pinned PyPI package ``django-static-mathjax`` (Apache-2.0; it depends
on nothing). We copy only what the pages load: the combined ``tex-chtml-full.js`` component (all TeX
extensions built in, so nothing is fetched lazily) and its woff-v2 fonts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

MATHJAX_PATH = "mathjax/es5/tex-chtml-full.js"  # relative to _static/
FONTS = "mathjax/es5/output/chtml/fonts/woff-v2"


def _mathjax_root() -> Path:
    try:
        import mathjax  # provided by django-static-mathjax
    except ImportError as exc:
        raise RuntimeError(
            "the book serves MathJax locally; install it with `pip install django-static-mathjax==3.2.2.1` "
            "(it is pinned in requirements.txt)"
        ) from exc
    return Path(mathjax.__file__).parent / "static"


def _use_local_mathjax(app: Sphinx, config) -> None:
    config.mathjax_path = MATHJAX_PATH


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root, static = _mathjax_root(), Path(app.outdir) / "_static"
    for relative in (MATHJAX_PATH, FONTS):
        source, target = root / relative, static / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def _drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    # sphinx-thebe registers its inline configuration script twice under Jupyter Book, which makes
    # the browser report "Identifier 'THEBE_JS_URL' has already been declared" on every page.
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # An inline script's filename is None in one registration and "" in the other.
        key = (str(getattr(script, "filename", script) or ""), getattr(script, "priority", 500),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    _mathjax_root()  # fail early, with the install hint, if MathJax is missing
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _drop_duplicate_scripts)
    # Every page loads MathJax: the navigation sidebar can show maths on pages that have none.
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
