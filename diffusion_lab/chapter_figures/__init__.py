"""The book's interactive figures, one function per figure, each returning a :class:`~diffusion_lab.figures.Explorer`.

A chapter builds its figure once and shows it twice: ``figure.live()`` (ipywidgets, needs a kernel;
in the rendered book that cell shows a note instead) and ``figure.static()`` (self-contained HTML that
the rendered book shows with no kernel). Every frame is computed here, in Python, when the chapter
runs; how the arrays are encoded in the page (int16 or uint8, base64) is described in
:mod:`diffusion_lab.figures`. Keep each figure's frames few and small: a chapter page's own HTML must
stay under 1.5 MB (``tests/test_site.py``).

One module per part of the book (``foundations``, ``training``, ``scores``, ``sampling``, ``beyond``),
all re-exported here, so a chapter writes ``chapter_figures.posterior(...)``.
"""

from .beyond import distilled_students, flow_vs_diffusion
from .foundations import elbo_terms, forward_process, forward_variants, posterior
from .sampling import ddim_steps_and_eta, denoising_trajectory, edit_and_inpaint, guidance_weight
from .scores import langevin_steps, sde_and_ode_paths
from .training import WeightSnapshots, training_snapshots

__all__ = [
    "WeightSnapshots",
    "ddim_steps_and_eta",
    "denoising_trajectory",
    "distilled_students",
    "edit_and_inpaint",
    "elbo_terms",
    "flow_vs_diffusion",
    "forward_process",
    "forward_variants",
    "guidance_weight",
    "langevin_steps",
    "posterior",
    "sde_and_ode_paths",
    "training_snapshots",
]
