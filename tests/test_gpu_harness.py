"""The GPU models' harness, end to end on the CPU with the smoke spec (tiny 8×8 runs): train the runs
concurrently through the command line, evaluate them into a results file, ship checkpoints that
load and verify, and render the results page from the file."""

import importlib.util
import json
import os
import tarfile
from pathlib import Path

import pytest

import diffusion_lab as dl

ROOT = Path(__file__).resolve().parent.parent


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    gpu_models = _module("gpu_models")
    tmp = tmp_path_factory.mktemp("gpu")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    gpu_models.main(["train", "--runs-spec", "smoke", "--runs", str(tmp / "runs")])
    # As on the GPU machine: pack the runs, bring them back, unpack, evaluate the unpacked copy.
    gpu_models.main(["pack", "--runs-spec", "smoke", "--runs", str(tmp / "runs"), "--dest", str(tmp / "out")])
    for archive in sorted((tmp / "out").glob("*.tgz")):
        with tarfile.open(archive) as tar:
            tar.extractall(tmp / "back", filter="data")
    assert sorted(p.name for p in (tmp / "back").iterdir()) == sorted(gpu_models.RUN_SPECS["smoke"])
    gpu_models.main(["evaluate", "--runs-spec", "smoke", "--runs", str(tmp / "back"), "--n", "24", "--n-snapshot", "12",
                     "--n-per-class", "2", "--batch-size", "16", "--results", str(tmp / "results.json")])
    return gpu_models, tmp, json.loads((tmp / "results.json").read_text())


def test_results_hold_every_measurement(smoke):
    gpu_models, _, results = smoke
    assert set(results["runs"]) == set(gpu_models.RUN_SPECS["smoke"])
    for name, record in results["runs"].items():
        assert record["steps"] == 4 and record["stopped_by"] == "steps" and record["parameters"] > 0
        assert [(s["sampler"], s["steps"]) for s in record["samplers"]] == gpu_models.SAMPLER_SPECS["smoke"]
        assert all(s["n"] == 24 and s["fld"] > 0 and s["floor"] > 0 for s in record["samplers"])
        assert [q["step"] for q in record["quality_vs_time"]] == [2, 4]
        assert [p["step"] for p in record["loss_curve"]] == [1, 2, 3, 4]
    guided = results["runs"]["digits8-smoke-cfg-unet"]["guided"]
    assert [g["guidance_scale"] for g in guided] == gpu_models.GUIDANCE_SCALES
    assert all(g["n"] == 20 and 0 <= g["accuracy"] <= 1 for g in guided)
    assert "guided" not in results["runs"]["digits8-smoke-unet"]
    labelled = results["runs"]["digits8-smoke-cfg-unet"]["samplers_with_labels"]
    assert [(s["sampler"], s["steps"]) for s in labelled] == gpu_models.SAMPLER_SPECS["smoke"]
    assert all(s["n"] == 24 and s["fld"] > 0 for s in labelled)
    assert "samplers_with_labels" not in results["runs"]["digits8-smoke-unet"]


def test_shipped_checkpoints_load_and_match_the_run(smoke, capsys):
    gpu_models, tmp, _ = smoke
    gpu_models.main(["ship", "--runs-spec", "smoke", "--runs", str(tmp / "back"), "--dest", str(tmp / "ckpt")])
    printed = capsys.readouterr().out
    for name in gpu_models.RUN_SPECS["smoke"]:
        path = tmp / "ckpt" / f"{name.replace('-', '_')}.pt"
        assert dl.pretrained.sha256_of(path) in printed  # the registry line carries the file's hash
        loaded = dl.pretrained.load_checkpoint(path)
        assert loaded.info["steps"] == 4 and loaded.denoiser.process.T == 50 and loaded.info["stopped_by"] == "steps"
        assert loaded.denoiser.clip == 1.0  # what evaluate samples with: x̂₀ clipped to the data range
        assert (loaded.model.num_classes is not None) == ("cfg" in name)


def test_results_page_is_rendered_from_the_file(smoke, monkeypatch):
    _, tmp, results = smoke
    table = _module("results_table")
    lines = "\n".join(table.gpu_section(results))
    for name, record in results["runs"].items():
        assert f"`{name}`" in lines
        assert f"{record['samplers'][0]['fld']:.3g}" in lines
    assert "w = 4" in lines and "Quality against training time" in lines
    assert "No GPU run has been recorded yet" in "\n".join(table.gpu_section(None))


def test_committed_results_page_is_up_to_date():
    assert _module("results_table").main(["--check"]) == 0, "run python benchmarks/results_table.py"
