"""Facts about ics_cli.figures.plots: every figure is a real image, drawn from the written CSVs alone."""

import shutil

import numpy as np
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
                                    markers=[(len(line.get_xdata()), line.get_marker(), line.get_markersize(),
                                              line.get_color()) for line in ax.get_lines()],
                                    images=[image.get_array() for image in ax.get_images()],
                                    shown=ax.axison, data=_has_data(ax),
                                    fonts={t.get_text(): t.get_fontsize() for t in
                                           [*ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels()]
                                           if t.get_text()})
                               for ax in fig.axes if ax.get_label() != "<colorbar>"],
                      "size": tuple(fig.get_size_inches()),
                      "shared_y": [fig.axes[0].get_shared_y_axes().joined(fig.axes[0], ax)
                                   for ax in fig.axes]}
        return save(fig, out_dir, name, fmt)
    monkeypatch.setattr(plots, "save_figure", spy)
    return seen


def _has_data(ax) -> bool:
    """Whether a panel shows something: a line with a finite point, a band, an image."""
    finite = any(np.isfinite(np.asarray(line.get_ydata(), float)).any() for line in ax.get_lines())
    return finite or bool(ax.collections) or bool(ax.get_images())


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


# --------------------------------------------------------------------------- legibility (issue 27, item 8)


def band_paths(ax) -> np.ndarray:
    """Every vertex of the bands (fill_between) drawn on `ax`."""
    paths = [path.vertices for coll in ax.collections for path in coll.get_paths()]
    return np.concatenate(paths) if paths else np.empty((0, 2))


def test_on_a_log_axis_a_band_is_drawn_only_where_its_lower_bound_is_positive():
    """A t-interval over few seeds reaching below zero (step 20) has no place on a log axis: the band is
    left out there, not stretched to the axis floor, and draw_series says so; on a linear axis it stays."""
    df = pd.DataFrame({"step": [0, 10, 20, 30, 40], "x_mean": [1.0, 2.0, 3.0, 4.0, 5.0],
                       "x_ci_low": [0.5, 1.0, -1.0, 2.0, 2.5], "x_ci_high": [2.0, 4.0, 7.0, 8.0, 10.0]})
    ax = style.new_figure(4, 3).subplots()
    assert style.draw_series(ax, df, "step", "x", color="k", label="x", log=True) is True
    vertices = band_paths(ax)
    assert set(vertices[:, 0]) == {0, 10, 30, 40}            # nothing at or around step 20
    assert (vertices[:, 1] > 0).all() and vertices[:, 1].min() == 0.5
    assert list(ax.get_lines()[0].get_ydata()) == [1, 2, 3, 4, 5]    # the mean line is whole
    linear = style.new_figure(4, 3).subplots()
    assert style.draw_series(linear, df, "step", "x", color="k", label="x", log=False) is False
    assert 20 in band_paths(linear)[:, 0] and band_paths(linear)[:, 1].min() == -1.0
    positive = df.assign(x_ci_low=[0.5, 1.0, 1.5, 2.0, 2.5])
    assert style.draw_series(style.new_figure(4, 3).subplots(), positive, "step", "x", color="k",
                             label="x", log=True) is False


def test_a_figure_says_so_only_where_a_band_was_left_out(tables, tmp_path, drawn):
    """grad_norms is on a log axis: a negative lower bound at one step puts the note in its title (the
    fixture's intervals over two or three seeds reach below zero; clipped to positive, no note)."""
    grads = tables["grad_curves"].copy()
    grads["grad_norm_ci_low"] = grads["grad_norm_ci_low"].clip(lower=1e-6)
    plots.grad_norms({**tables, "grad_curves": grads}, tmp_path)
    assert style.BAND_CUT_NOTE not in drawn["grad_norms"]["title"]
    grads.loc[grads.index[1], "grad_norm_ci_low"] = -1.0
    plots.grad_norms({**tables, "grad_curves": grads}, tmp_path)
    assert style.BAND_CUT_NOTE in drawn["grad_norms"]["title"]


def test_a_quantity_that_was_not_recorded_gets_no_panel(tables, tmp_path, drawn):
    """No training loss: accuracy alone. No tracked units for batch: none's panel alone. No act site:
    the distribution figure's two rows of the norm site. No norm_eval: the drift figures' linear site.
    Every panel drawn shows data."""
    curves = tables["curves"].copy()
    curves[[c for c in curves if c.startswith("train_loss")]] = np.nan
    layer_curves = tables["layer_curves"]
    lean = {**tables, "curves": curves,
            "percentiles": tables["percentiles"][tables["percentiles"]["norm"] != "batch"],
            "layer_curves": layer_curves[~layer_curves["site"].isin(["act", "norm_eval"])],
            "drift": tables["drift"][tables["drift"]["site"] != "norm_eval"]}
    for figure in plots.FIGURES:
        figure(lean, tmp_path)
    assert [a["title"] for a in drawn["accuracy_loss"]["axes"]] == ["Test accuracy"]
    assert [a["title"] for a in drawn["percentiles"]["axes"]] == ["none, seed 0"]
    assert "no tracked units recorded: batch" in drawn["percentiles"]["title"]
    assert len(drawn["distribution_shift"]["axes"]) == 2 * 2           # 2 rows (norm site) x 2 layers
    assert [a["title"] for a in drawn["drift"]["axes"]] == ["hidden1, linear site", "hidden2, linear site"]
    assert [a["title"].split(":")[0] for a in drawn["drift_heatmap"]["axes"]] == ["linear site"]
    for name, fig in drawn.items():
        for ax in fig["axes"]:
            assert ax["shown"] and ax["data"], (name, ax["title"])
    # Nothing recorded at all: no file, rather than a figure of empty panels.
    empty = {**lean, "percentiles": lean["percentiles"].iloc[:0]}
    assert plots.percentiles(empty, tmp_path / "none") == []


def test_a_curve_of_one_point_is_drawn_as_a_marker(tables, tmp_path, drawn):
    """A very short run evaluates once or twice: a training loss of one point (step 0 has none) is a
    visible marker, not an empty panel; curves of several points stay plain lines."""
    curves = tables["curves"].copy()
    curves.loc[curves["step"] != curves["step"].max(), [c for c in curves if c.startswith("train_loss")]] = np.nan
    plots.accuracy_loss({**tables, "curves": curves}, tmp_path)
    accuracy, loss = drawn["accuracy_loss"]["axes"]
    assert loss["title"] == "Training loss"
    marked = {color for n, marker, size, color in loss["markers"]
              if n == 1 and marker not in ("None", "", " ", None) and size >= 4}
    assert marked >= {style.norm_color("none"), style.norm_color("batch")}   # one point each
    assert all(marker == "None" for n, marker, *_ in accuracy["markers"] if n > 1)
    # The band of that point is an error bar (a band of one point would draw nothing).
    df = pd.DataFrame({"step": [40], "x_mean": [1.0], "x_ci_low": [0.5], "x_ci_high": [1.5]})
    ax = style.new_figure(4, 3).subplots()
    style.draw_series(ax, df, "step", "x", color="k", label="x")
    assert ax.get_lines()[0].get_marker() == "o" and ax.containers       # marker + errorbar


def test_heatmap_labels_and_numbers_are_legible(tables, tmp_path, drawn):
    """Tick labels and cell numbers at ≥ 9 pt in a figure sized to its cells (not a wide strip that a
    page shrinks); long configuration labels wrapped into a few short lines."""
    plots.drift_heatmap(tables, tmp_path)
    heat = drawn["drift_heatmap"]
    fonts = [(text, size) for ax in heat["axes"] for text, size in ax["fonts"].items()]
    assert {"none", "batch", "1", "2", "0.04"} <= {text for text, _ in fonts}    # norms, layers, a cell
    assert min(size for _, size in fonts) >= 9, fonts
    width, height = heat["size"]
    assert width <= 12 and height <= 10              # 2 norms x 2 layers x 2 sites
    label = ("batch (batch_size=2, groups=8, steps=8000, log_every=1600, eval_every=1600, "
             "sharpness_every=1600, sharpness_method=lanczos, landscape_every=10)")
    lines = plots.heat_label(label).split("\n")
    assert 1 < len(lines) <= plots.HEAT_LINES and all(len(x) <= plots.HEAT_CHARS for x in lines)
    assert lines[0].startswith("batch (") and lines[-1].endswith("…")
    assert plots.heat_label("none") == "none"
