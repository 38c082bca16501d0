"""Facts about ics_cli.figures.plots: every figure is a real image, drawn from the written CSVs alone."""

import shutil

import pandas as pd
import pytest

from ics_cli.analyse import compare
from ics_cli.store import files
from ics_cli.analyse import outputs
from ics_cli.figures import plots
from ics_cli.figures import draw
from ics_cli.figures import style
from ics_cli.errors import IcsError
from ics_cli.store.runs import find_runs

from fixtures_runs import write_runs
from synthetic import edit_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["accuracy_loss", "distribution_shift", "drift", "percentiles", "grad_norms",
           "lr_tolerance", "drift_heatmap"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """build -> write -> load, then the run folders are deleted: figures can only use the CSVs."""
    root = tmp_path_factory.mktemp("plots")
    sweep = write_runs(root)
    files.write_tables(compare.build(find_runs(sweep)), root / "compare")
    shutil.rmtree(sweep)
    return outputs.load(root / "compare")


def test_draw_all_writes_every_figure_as_a_png(tables, tmp_path):
    paths = draw.draw_all(tables, tmp_path / "figs")
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
    for folder in sorted(sweep.iterdir()):  # a second model, same numbers
        copy = sweep / (folder.name + "-cnn")
        shutil.copytree(folder, copy)
        edit_config(copy, model="cnn")
    tables = compare.build(find_runs(sweep))
    paths = plots.accuracy_loss(tables, tmp_path / "figs") + plots.lr_tolerance(tables, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["accuracy_loss_cnn.png", "accuracy_loss_mlp.png",
                                             "lr_tolerance_cnn.png", "lr_tolerance_mlp.png"]


def test_norm_colours_are_fixed_and_distinct():
    known = ["none", "batch", "layer", "instance", "group", "batch-nograd"]
    assert len({style.norm_color(n) for n in known}) == len(known)
    assert style.norm_color("weight") == style.norm_color("weight")
    assert style.norm_color("weight") not in {style.norm_color(n) for n in known}


def test_every_norm_is_drawn_at_the_headline_lr(tables):
    """Common lrs 0.1 and 1; a none seed diverged at 1, so both norms are drawn at 0.1, not batch at
    its own best lr 1."""
    picks, note = style.matched_picks(tables, "mlp")
    assert [(norm, key["lr"], label) for norm, key, label in picks] == [("none", 0.1, "none"),
                                                                        ("batch", 0.1, "batch")]
    assert note == "all norms at lr 0.1 (matched: best mean over norms)"
    # Without the divergence lr 1 has the best mean over norms: both move there together.
    summary = tables["summary"].copy()
    summary.loc[(summary["norm"] == "none") & (summary["lr"] == 1.0), ["final_test_acc_mean", "n_diverged"]] \
        = [0.99, 0]
    picks, note = style.matched_picks({**tables, "summary": summary}, "mlp")
    assert [key["lr"] for _, key, _ in picks] == [1.0, 1.0] and note.startswith("all norms at lr 1 ")


@pytest.fixture
def drawn(monkeypatch):
    """What each saved figure showed: {file stem: Figure}, captured before the figure is cleared."""
    seen = {}
    save = style.save_figure

    def spy(fig, out_dir, name, fmt):
        title = fig._suptitle.get_text() if fig._suptitle else ""
        seen[name] = {"title": " ".join(title.split()),  # titles are wrapped to the figure's width
                      "axes": [dict(title=ax.get_title(), ylabel=ax.get_ylabel(),
                                    lines=[line.get_ydata() for line in ax.get_lines()],
                                    images=[image.get_array() for image in ax.get_images()])
                               for ax in fig.axes if ax.get_label() != "<colorbar>"],
                      "shared_y": [fig.axes[0].get_shared_y_axes().joined(fig.axes[0], ax)
                                   for ax in fig.axes]}
        return save(fig, out_dir, name, fmt)
    monkeypatch.setattr(plots, "save_figure", spy)
    return seen


def test_side_by_side_figures_say_the_matched_lr(tables, tmp_path, drawn):
    draw.draw_all(tables, tmp_path)
    for name in ("accuracy_loss", "distribution_shift", "drift", "percentiles", "grad_norms",
                 "drift_heatmap"):
        assert "all norms at lr 0.1" in drawn[name]["title"], name
    assert "lr 0.1" not in drawn["lr_tolerance"]["axes"][0]["title"]


def test_drift_figures_show_the_scale_free_drift_at_the_linear_and_norm_eval_sites(tables, tmp_path, drawn):
    plots.drift(tables, tmp_path)
    fig = drawn["drift"]
    assert [a["title"] for a in fig["axes"]] == ["hidden1, linear site", "hidden2, linear site",
                                                 "hidden1, norm_eval site", "hidden2, norm_eval site"]
    assert "input each norm receives" in fig["title"] and "|Δμ| / σ" in fig["title"]
    assert "linear site" in fig["axes"][0]["ylabel"] and "norm_eval" in fig["axes"][2]["ylabel"]
    # none, hidden1, linear site: f|ΔM| = |ΔM| at steps 10..40, mean over seeds
    none = fig["axes"][0]["lines"][0]
    assert list(none) == pytest.approx([(0.2 + 0.4 + 0.1) / 3, (0.3 + 0 + 0.2) / 3, (0.1 + 0.4 + 0.3) / 3, 0])
    plots.drift_heatmap(tables, tmp_path)
    heat = drawn["drift_heatmap"]
    assert [a["title"].split(":")[0] for a in heat["axes"]] == ["linear site", "norm_eval site"]
    grid = heat["axes"][0]["images"][0]
    assert grid[0, 0] == pytest.approx(2 / 3) and grid[1, 1] == pytest.approx(0.04)  # none h1, batch h2


def test_percentiles_show_one_seed_on_a_shared_y_axis(tables, tmp_path, drawn):
    plots.percentiles(tables, tmp_path)
    fig = drawn["percentiles"]
    assert all(fig["shared_y"]) and len(fig["axes"]) == 2
    assert "seed 0" in fig["title"] and "not averaged" in fig["title"]
    assert [a["title"] for a in fig["axes"]] == ["none, seed 0", "batch, seed 0"]
    # hidden2, norm site, unit 0 of seed 0: p50 = 2·0.5·M = M of none lr 0.1 seed 0, not a mean over seeds
    assert list(fig["axes"][0]["lines"][0]) == pytest.approx([0.0, 0.2, 0.5, 0.4, 0.4])


def test_degenerate_figures_are_not_drawn(tmp_path):
    """One lr swept: no lr-tolerance curve. Runs from before the scale-free drift: no drift figures."""
    sweep = write_runs(tmp_path / "one")
    one = compare.build([r for r in find_runs(sweep) if r.config["config"]["lr"] == 0.1])
    assert plots.lr_tolerance(one, tmp_path / "figs") == []
    names = [p.stem for p in draw.draw_all(one, tmp_path / "figs")]
    assert names == ["accuracy_loss", "distribution_shift", "drift", "percentiles", "grad_norms",
                     "drift_heatmap"]
    legacy = compare.build(find_runs(write_runs(tmp_path / "legacy", legacy=True)))
    names = [p.stem for p in draw.draw_all(legacy, tmp_path / "old")]
    assert names == ["accuracy_loss", "distribution_shift", "percentiles", "grad_norms", "lr_tolerance"]


def test_every_figure_kind_has_a_one_sentence_caption(tmp_path):
    assert set(plots.CAPTIONS) == {f.__name__ for f in plots.FIGURES}
    for text in plots.CAPTIONS.values():
        assert text.endswith(".") and text.count(". ") == 0
    assert draw.caption(tmp_path / "drift_heatmap_cnn.png") == plots.CAPTIONS["drift_heatmap"]
    assert draw.caption("drift.svg") == plots.CAPTIONS["drift"]
    assert draw.caption("drift_mlp.png").startswith("Scale-free drift")
    for kind in plots.CAPTIONS:
        assert draw.caption(f"{kind}.png") == draw.caption(f"{kind}_cnn.pdf") == plots.CAPTIONS[kind]
    with pytest.raises(KeyError):
        draw.caption("summary.png")


def test_unknown_format_is_refused(tables, tmp_path):
    with pytest.raises(IcsError, match="figure format 'gif' is not one of: png, svg, pdf"):
        draw.draw_all(tables, tmp_path, fmt="gif")


def test_a_figure_whose_large_table_was_left_out_is_kept_not_removed(tables, tmp_path):
    """results/ leaves out the large per-step tables: redrawing keeps the figures drawn from them, and
    still removes a figure of the previous set whose table is here but which has nothing to show."""
    full = draw.draw_all(tables, tmp_path)
    kept = {p.name for p in full if draw.kind_of(p) in plots.SOURCES}
    assert kept, "the fixture draws figures from the per-step tables"
    before = {p.name: p.read_bytes() for p in full}
    lean = {name: t for name, t in tables.items() if name not in set(plots.SOURCES.values())}
    drawn = {p.name for p in draw.draw_all(lean, tmp_path)}
    assert not drawn & kept
    on_disk = {p.name for p in tmp_path.iterdir()}
    assert kept <= on_disk and all((tmp_path / n).read_bytes() == before[n] for n in kept)
    # A stray figure file of a kind whose table is present is still the set's to remove.
    (tmp_path / "accuracy_loss_stale.png").write_bytes(b"old")
    draw.draw_all(lean, tmp_path)
    assert not (tmp_path / "accuracy_loss_stale.png").exists()


def test_large_tables_saved_gzipped_read_back_equal_and_the_same_bytes(tables, tmp_path):
    """A study's tables/ keep the per-step tables as .csv.gz: read back equal, the same bytes each time,
    and a later plain write replaces the gzipped file (one spelling per table)."""
    files.write_tables(tables, tmp_path / "a", gzipped=outputs.PER_STEP_TABLES)
    files.write_tables(tables, tmp_path / "b", gzipped=outputs.PER_STEP_TABLES)
    for name in outputs.PER_STEP_TABLES:
        assert (tmp_path / "a" / f"{name}.csv.gz").read_bytes() == (tmp_path / "b" / f"{name}.csv.gz").read_bytes()
        assert not (tmp_path / "a" / f"{name}.csv").exists()
    back = outputs.load(tmp_path / "a")
    assert set(back) == set(tables)
    for name in outputs.PER_STEP_TABLES:
        pd.testing.assert_frame_equal(back[name], tables[name])
    files.write_tables(tables, tmp_path / "a")
    assert not (tmp_path / "a" / "layer_curves.csv.gz").exists() and (tmp_path / "a" / "layer_curves.csv").exists()
