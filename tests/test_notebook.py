"""The course notebook, executed end to end on the smoke profile by a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "week3_study.ipynb"
SMOKE_ARMS = "arms=[tfidf_logreg,encoder_lora,decoder_lora]"  # the arms the notebook uses; keeps the test short


def with_parameters(notebook, **values):
    """Insert a cell after the one tagged `parameters` that sets `values` (papermill's convention)."""
    from nbformat.v4 import new_code_cell

    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(index + 1, new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items())))
    return notebook


def outputs(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts += [str(value) for value in output.get("data", {}).values()]
    return "\n".join(parts)


def test_week3_notebook_runs_on_smoke(tmp_path, monkeypatch):
    import os

    import lorastudy

    # The kernel imports the lorastudy under test, wherever the test process found it.
    source = str(Path(lorastudy.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = with_parameters(nbformat.read(NOTEBOOK, as_version=4), PROFILE="smoke", INSTALL=False,
                               OVERRIDES=[SMOKE_ARMS], OUTPUT_DIR=str(tmp_path / "run"))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = [outputs(cell) for cell in notebook.cells if cell.cell_type == "code"]
    everything = "\n".join(text)
    assert "profile: smoke" in everything
    assert "[3/3] decoder_lora__seed42: val macro F1" in everything  # the study's progress is visible in the notebook
    assert any("<iframe srcdoc=" in t and "&lt;html" in t.lower() for t in text)  # the note, inline
    table = next(t for t in text if "predicted_label" in t and "true_label" in t)
    assert "probability" in table and "third_label" in table
    assert (tmp_path / "run" / "note" / "note.html").is_file()
    assert json.loads((tmp_path / "run-encoder_lora" / "config.json").read_text())["id2label"]


def test_notebook_parameters_cell_is_tagged():
    """CI and papermill find the parameters by this tag; without it the notebook would run the demo."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and "PROFILE = None" in tagged[0].source
