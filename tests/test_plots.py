"""Facts about ics_cli.plots: every figure is a real image, drawn from the written CSVs alone."""

import json
import shutil

import pytest

from ics_cli import compare, plots
from ics_cli.errors import IcsError
from ics_cli.store import find_runs

from fixtures_runs import write_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["accuracy_loss", "distribution_shift", "drift", "percentiles", "grad_norms",
           "lr_tolerance", "drift_heatmap"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """build -> write -> load, then the run folders are deleted: figures can only use the CSVs."""
    root = tmp_path_factory.mktemp("plots")
    sweep = write_runs(root)
    compare.write(compare.build(find_runs(sweep)), root / "compare")
    shutil.rmtree(sweep)
    return compare.load(root / "compare")


def test_draw_all_writes_every_figure_as_a_png(tables, tmp_path):
    paths = plots.draw_all(tables, tmp_path / "figs")
    assert [p.name for p in paths] == [f"{name}.png" for name in FIGURES]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), path.name
        assert len(data) > 20_000, path.name  # a drawn figure, not an empty canvas
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in paths)


def test_vector_formats(tables, tmp_path):
    (svg,) = plots.lr_tolerance(tables, tmp_path, fmt="svg")
    assert svg.suffix == ".svg" and b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 10_000
    (pdf,) = plots.drift_heatmap(tables, tmp_path, fmt="pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5_000


def test_same_tables_give_the_same_svg_bytes(tables, tmp_path):
    (a,) = plots.accuracy_loss(tables, tmp_path / "a", fmt="svg")
    (b,) = plots.accuracy_loss(tables, tmp_path / "b", fmt="svg")
    assert a.read_bytes() == b.read_bytes()


def test_one_file_per_model(tmp_path):
    sweep = write_runs(tmp_path)
    for folder in list(sweep.iterdir())[:4]:  # a second model, same numbers
        copy = sweep / (folder.name + "-cnn")
        shutil.copytree(folder, copy)
        meta = json.loads((copy / "config.json").read_text())
        meta["config"]["model"] = "cnn"
        (copy / "config.json").write_text(json.dumps(meta))
    tables = compare.build(find_runs(sweep))
    paths = plots.accuracy_loss(tables, tmp_path / "figs") + plots.lr_tolerance(tables, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["accuracy_loss_cnn.png", "accuracy_loss_mlp.png",
                                             "lr_tolerance_cnn.png", "lr_tolerance_mlp.png"]


def test_norm_colours_are_fixed_and_distinct():
    known = ["none", "batch", "layer", "instance", "group", "batch-nograd"]
    assert len({plots.norm_color(n) for n in known}) == len(known)
    assert plots.norm_color("weight") == plots.norm_color("weight")
    assert plots.norm_color("weight") not in {plots.norm_color(n) for n in known}


def test_each_norm_draws_its_best_configuration_without_divergence(tables):
    assert [label for _, _, label in plots._picks(tables, "mlp")] == ["none (lr=0.1)", "batch (lr=1)"]
    # Make none's lr 1 the most accurate: it still has a diverged seed, so lr 0.1 is drawn.
    summary = tables["summary"].copy()
    summary.loc[(summary["norm"] == "none") & (summary["lr"] == 1.0), "final_test_acc_mean"] = 0.99
    picks = plots._picks({**tables, "summary": summary}, "mlp")
    assert picks[0][1]["lr"] == 0.1
    # Make batch lr 0.01 the most accurate: no divergence there, so it is drawn.
    summary.loc[(summary["norm"] == "batch") & (summary["lr"] == 0.01), "final_test_acc_mean"] = 0.99
    picks = plots._picks({**tables, "summary": summary}, "mlp")
    assert picks[1][2] == "batch (lr=0.01)"


def test_unknown_format_is_refused(tables, tmp_path):
    with pytest.raises(IcsError, match="figure format 'gif' is not one of: png, svg, pdf"):
        plots.draw_all(tables, tmp_path, fmt="gif")
