"""Write the book's results page (book/results.md) from the committed result files; never typed by hand.

    python benchmarks/results_table.py          # rewrite book/results.md
    python benchmarks/results_table.py --check  # exit 1 if book/results.md is out of date (CI)

Sources: ``benchmarks/results/gpu_models.json`` (written on a GPU by ``benchmarks/gpu_models.py
evaluate``) and ``benchmarks/results/digits8.json`` (the CPU model, ``benchmarks/digits8.py``).
A missing source gives a note on the page saying which command produces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "book" / "results.md"
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpm++2m": "DPM-Solver++(2M)", "heun": "Heun"}


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def gpu_section(data: dict | None) -> list[str]:
    out = ["## GPU models: MNIST and Fashion-MNIST", ""]
    if data is None:
        return out + [
            "```{note}",
            "No GPU run has been recorded yet: `benchmarks/results/gpu_models.json` does not exist.",
            "It is written on a GPU machine by `python benchmarks/gpu_models.py train` and",
            "`python benchmarks/gpu_models.py evaluate` (see `scripts/gpu/README.md`); this page is then",
            "regenerated with `python benchmarks/results_table.py`. Until then the image chapter samples",
            "MNIST from the small CPU preview model.",
            "```",
            "",
        ]
    runs = data["runs"]
    specs = []
    for record in runs.values():
        for s in record["samplers"]:
            if (s["sampler"], s["steps"]) not in specs:
                specs.append((s["sampler"], s["steps"]))
    header = ["model", "parameters", "GPU", "training", "images/s"] + [
        f"FLD {SAMPLER_LABELS[s]} {k}" for s, k in specs] + ["floor"]
    rows = []
    for name, r in runs.items():
        by_spec = {(s["sampler"], s["steps"]): s for s in r["samplers"]}
        floor = r["samplers"][0]["floor"]
        rows.append([f"`{name}`", f"{r['parameters'] / 1e6:.2f} M", r.get("gpu") or r["device"],
                     f"{r['train_seconds'] / 60:.1f} min, {r['steps']} steps", f"{r['images_per_s']:.0f}"]
                    + [f"{_fmt(by_spec[k]['fld'])} ({by_spec[k]['ratio']:.2f}×)" if k in by_spec else "–"
                       for k in specs] + [_fmt(floor)])
        if r.get("samplers_with_labels"):  # a class-conditional model, sampled with the test labels (w = 0)
            labelled = {(s["sampler"], s["steps"]): s for s in r["samplers_with_labels"]}
            rows.append([f"`{name}`, test labels", "", "", "", ""]
                        + [f"{_fmt(labelled[k]['fld'])} ({labelled[k]['ratio']:.2f}×)" if k in labelled else "–"
                           for k in specs] + [_fmt(floor)])
    out += [
        f"FLD of {data['n']} samples against the test set, with the ratio to the real-vs-real floor",
        "(training against test images at the same size) in brackets. NFE = steps for every sampler here.",
        "A class-conditional model is sampled twice: with the null label (unconditional), and with the",
        "labels of the test images and no guidance (\"test labels\"), the branch it is trained on most.",
        "",
        *_table(header, rows),
        "",
    ]
    guided = {name: r["guided"] for name, r in runs.items() if r.get("guided")}
    if guided:
        scales = [g["guidance_scale"] for g in next(iter(guided.values()))]
        out += ["### Classifier-free guidance: class accuracy of guided samples", "",
                "Fraction of samples that the project's LeNet classifies as the requested class",
                "(DPM-Solver++(2M), 20 steps).", ""]
        out += _table(["model"] + [f"w = {w:g}" for w in scales],
                      [[f"`{name}`"] + [f"{g['accuracy']:.3f}" for g in rows_] for name, rows_ in guided.items()])
        out.append("")
    timed = {name: r["quality_vs_time"] for name, r in runs.items() if r.get("quality_vs_time")}
    if timed:
        out += ["### Quality against training time", "",
                "FLD ratio to the floor of EMA snapshots (DPM-Solver++(2M), 20 steps), by wall-clock minutes.", ""]
        for name, points in timed.items():
            out.append(f"- `{name}`: " + ", ".join(f"{p['elapsed_s'] / 60:.1f} min: {p['ratio']:.2f}×"
                                                 for p in points))
        out.append("")
    bars = data["bars"]
    out += [f"Bars: MNIST FLD ≤ {bars['mnist_fld_ratio']:g}× the floor at ≤ 20 NFE, Fashion-MNIST ≤ "
            f"{bars['fashion_mnist_fld_ratio']:g}×, training ≤ {bars['max_train_minutes']:g} min, a fast solver at 20 NFE "
            f"within {bars['fast_vs_ddpm1000_relative']:.0%} of DDPM-1000's FLD, guided MNIST accuracy ≥ "
            f"{bars['mnist_guided_accuracy']:.0%}.", ""]
    return out


def cpu_section(data: dict | None) -> list[str]:
    out = ["## CPU model: the 8×8 digits", ""]
    if data is None:
        return out + ["No result yet: run `python benchmarks/digits8.py`.", ""]
    q, t = data["quality"], data["training"]
    recipe = data.get("recipe", {})
    steps = f"{t['steps']} steps" + (f" of {recipe['batch_size']} images" if "batch_size" in recipe else "")
    if t.get("train_seconds") is None:  # a checkpoint trained on a loaded machine records no time
        cost = f"{steps}; no representative training time, {t.get('note_when_trained') or 'none recorded'}"
    else:
        cost = (f"{steps}; {t['train_seconds']:.0f} s wall clock, "
                f"{t.get('train_cpu_seconds', float('nan')):.0f} s of CPU time")
    out += [
        f"The class-conditional UNet shipped as `digits8-unet`, trained on the CPU ({cost}). "
        f"{data['evaluation']['n']} samples, DDPM on {data['evaluation']['sampling_steps']} respaced steps.",
        "",
        *_table(["samples", "FLD", "ratio to floor", "class accuracy"],
                [["unconditional", _fmt(q["fld_unconditional"]), f"{q['fld_ratio_unconditional']:.2f}", "–"]]
                + [[f"guided, w = {w}", _fmt(g["fld"]), f"{g['fld_ratio']:.2f}", f"{g['accuracy']:.3f}"]
                   for w, g in q["guided"].items()]),
        "",
        f"Floor (train vs test, n = {data['evaluation']['n']}): {_fmt(q['floor'])}.",
        "",
    ]
    return out


def render() -> str:
    def load(name: str) -> dict | None:
        path = RESULTS / name
        return json.loads(path.read_text()) if path.exists() else None

    lines = [
        "<!-- Generated by benchmarks/results_table.py from benchmarks/results/*.json: do not edit. -->",
        "# Results",
        "",
        "The trained models of the book and how good they are, measured by the project's own scripts.",
        "Sample quality is the Fréchet LeNet distance (FLD; see {doc}`09_images`): the Fréchet distance",
        "between LeNet features of samples and of test images, which is positive even for real images, so",
        "every value is shown next to the real-vs-real *floor* at the same sample size.",
        "",
        *gpu_section(load("gpu_models.json")),
        *cpu_section(load("digits8.json")),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that the page is up to date")
    args = p.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE} is out of date: run python benchmarks/results_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print("wrote", PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
