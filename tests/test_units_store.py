"""Facts about the per-unit table on disk (UnitsLog): blocks read back as written, with the
same dtypes from units.parquet or the parts of an unfinished run (Arrow IPC files); the same rows
give the same bytes however they were split, and whether layer and site came as strings or as
Categoricals; a resume drops exactly the rows past its step; a damaged or linked units.parquet or
part is one line; `ics export` gives a CSV."""

import numpy as np
import pandas as pd
import pytest

from ics_cli.store import runs as store
from ics_cli.store import schema
from ics_cli.store import units
from ics_cli.store.units import PARTS, UNITS_VALUES, UnitsLog, _arrow_table, _block
from ics_cli.cli import Table, main

from expect import error_line

LAYERS, SITES, UNITS = ("hidden1", "hidden2"), ("linear", "norm", "act"), 4
TRACKED = 2        # units 0, 1 have percentiles; the others are NaN there, as in a real run


def rows(steps) -> dict[str, np.ndarray]:
    """A block of units rows at `steps`: every (layer, site, unit), values that differ everywhere
    (each step's values depend on the step alone, so blocks can be compared however they were cut)."""
    blocks = []
    for s in steps:
        key = [(s, layer, site, u) for layer in LAYERS for site in SITES for u in range(UNITS)]
        step, layer, site, unit = (np.array(c) for c in zip(*key))
        rng = np.random.default_rng(s)
        block = {"step": step.astype(np.int64), "layer": layer, "site": site.astype(object),
                 "unit": unit.astype(np.int64)}
        for c in UNITS_VALUES:
            v = (rng.standard_normal(len(key)) * 10.0 ** rng.integers(-6, 6, len(key))).astype(np.float32)
            if c.startswith("p"):
                v[unit >= TRACKED] = np.nan
            block[c] = v
        block["mean"][0] = np.inf if s == 0 else block["mean"][0]     # a diverged run records inf
        blocks.append(block)
    return join(*blocks)


def cut(block, at: list[int]) -> list[dict]:
    """`block` split into consecutive row ranges at the row indices `at`."""
    edges = [0, *at, len(block["step"])]
    return [{c: v[a:b] for c, v in block.items()} for a, b in zip(edges, edges[1:])]


def join(*blocks) -> dict[str, np.ndarray]:
    return {c: np.concatenate([b[c] for b in blocks]) for c in schema.UNITS_COLUMNS}


def write(run_dir, blocks, finish=True):
    run_dir.mkdir(parents=True, exist_ok=True)
    log = UnitsLog(run_dir, fresh=True)
    for b in blocks:
        log.append(b)
    return log.finish() if finish else log


def assert_table_is(table: pd.DataFrame, block: dict[str, np.ndarray]) -> None:
    """`table` (read_table) holds exactly `block`'s rows in order, in the documented dtypes."""
    assert list(table.columns) == schema.UNITS_COLUMNS
    assert table["step"].dtype == np.int64 and table["unit"].dtype == np.int64
    for c in ("layer", "site"):
        assert pd.api.types.is_string_dtype(table[c]) and all(type(v) is str for v in table[c])
        assert list(table[c]) == list(block[c])
    for c in ("step", "unit"):
        np.testing.assert_array_equal(table[c].to_numpy(), block[c])
    for c in UNITS_VALUES:
        assert table[c].dtype == np.float64
        # units.parquet and the parts hold the float32 values.
        np.testing.assert_array_equal(table[c].to_numpy().astype(np.float32), block[c])


# --------------------------------------------------------------------------- writing and reading back


def test_blocks_read_back_as_written_in_one_final_file(tmp_path):
    blocks = [rows([0]), rows([10, 20]), rows([30])]
    final = write(tmp_path, blocks)
    assert final == tmp_path / "units.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units.parquet"]     # the parts are gone
    assert_table_is(store.read_table(tmp_path, "units"), join(*blocks))


def test_an_unfinished_runs_parts_are_read_as_one_table(tmp_path):
    blocks = [rows([0]), rows([10]), rows([20, 30])]
    write(tmp_path, blocks, finish=False)
    assert len(list((tmp_path / PARTS).iterdir())) == 3
    assert not (tmp_path / "units.parquet").exists()
    assert_table_is(store.read_table(tmp_path, "units"), join(*blocks))


def test_a_run_without_units_reads_as_an_empty_table_of_the_same_dtypes(tmp_path):
    table = store.read_table(tmp_path, "units")
    assert len(table) == 0 and list(table.columns) == schema.UNITS_COLUMNS
    assert table["step"].dtype == np.int64 and table["mean"].dtype == np.float64


def test_the_same_rows_give_the_same_bytes_however_they_were_split(tmp_path, monkeypatch):
    monkeypatch.setattr(units, "ROW_GROUP_ROWS", 50)      # several row groups, cut across blocks
    everything = rows([0, 10, 20, 30, 40])
    per_step = len(LAYERS) * len(SITES) * UNITS
    splits = {"one": [], "per step": [per_step * k for k in range(1, 5)],
              "uneven, inside steps": [7, per_step, per_step + 1, 3 * per_step - 5, 99]}
    finals = {}
    for name, at in splits.items():
        final = write(tmp_path / name, cut(everything, at))
        finals[name] = final.read_bytes()
    assert len(set(finals.values())) == 1, {k: len(v) for k, v in finals.items()}
    import pyarrow.parquet as pq
    assert pq.ParquetFile(final).num_row_groups == -(-len(everything["step"]) // 50)


def categorical(block, order=None):
    """`block` with layer and site as pandas Categoricals (codes into the names), the names in
    `order` (a different order than the rows', and a name no row holds) when given."""
    out = dict(block)
    for c in ("layer", "site"):
        names = order[c] if order else sorted(set(block[c]))
        out[c] = pd.Categorical(block[c], categories=names)
    return out


def test_layer_and_site_as_categoricals_give_the_same_table_and_bytes_as_strings(tmp_path, monkeypatch):
    monkeypatch.setattr(units, "ROW_GROUP_ROWS", 50)
    everything = rows([0, 10, 20])
    order = {"layer": ["unused", *reversed(LAYERS)], "site": [*reversed(SITES), "unused"]}
    strings = write(tmp_path / "strings", [everything])
    blocks = cut(everything, [7, 30, 31])
    final = write(tmp_path / "categoricals", [categorical(b, order) for b in blocks[:2]]
                  + [categorical(b) for b in blocks[2:]])
    assert final.read_bytes() == strings.read_bytes()
    assert_table_is(store.read_table(tmp_path / "categoricals", "units"), everything)


def test_rows_out_of_step_order_or_other_columns_are_refused(tmp_path):
    log = UnitsLog(tmp_path, fresh=True)
    log.append(rows([10]))
    with pytest.raises(ValueError, match="ordered by step"):
        log.append(rows([0]))
    with pytest.raises(ValueError, match="columns"):
        log.append({c: v for c, v in rows([20]).items() if c != "p85"})
    log.append({c: v[:0] for c, v in rows([20]).items()})     # an empty block writes nothing
    assert len(list((tmp_path / PARTS).iterdir())) == 1


def test_a_fresh_log_removes_every_earlier_units_file(tmp_path):
    (tmp_path / "units.parquet").write_text("old")
    write(tmp_path, [rows([0])], finish=False)
    UnitsLog(tmp_path, fresh=True)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- resuming


def test_truncate_drops_exactly_the_rows_past_the_step_and_resumes_to_the_same_bytes(tmp_path):
    blocks = [rows([0, 10]), rows([20, 30]), rows([40]), rows([50])]   # step 25 falls inside a part
    log = write(tmp_path / "killed", blocks, finish=False)
    log.truncate(25)
    kept = join(*blocks)
    kept = {c: v[kept["step"] <= 25] for c, v in kept.items()}
    assert_table_is(store.read_table(tmp_path / "killed", "units"), kept)
    resumed = UnitsLog(tmp_path / "killed", fresh=False)     # a new process resumes
    resumed.truncate(25)
    resumed.append(rows([30]))
    resumed.append(rows([40, 50]))
    final = resumed.finish()
    whole = write(tmp_path / "whole", [join(rows([0, 10]), rows([20]), rows([30])), rows([40, 50])])
    assert_table_is(store.read_table(tmp_path / "killed", "units"),
                    join(rows([0, 10]), rows([20]), rows([30]), rows([40, 50])))
    assert final.read_bytes() == whole.read_bytes()


def test_a_kill_while_truncate_rewrites_a_part_leaves_each_row_once(tmp_path):
    log = write(tmp_path, [rows([0]), rows([10, 20])], finish=False)
    parts = tmp_path / PARTS
    before = {p.name: p.read_bytes() for p in parts.iterdir()}
    log.truncate(10)
    for name, data in before.items():       # the original of the rewritten part, left by a kill
        (parts / name).write_bytes(data)
    assert len(list(parts.iterdir())) == 3
    expected = join(rows([0]), {c: v[rows([10, 20])["step"] == 10] for c, v in rows([10, 20]).items()})
    assert_table_is(store.read_table(tmp_path, "units"), expected)
    UnitsLog(tmp_path, fresh=False).truncate(10)      # the resume after the kill tidies up
    assert len(list(parts.iterdir())) == 2
    assert_table_is(store.read_table(tmp_path, "units"), expected)


# --------------------------------------------------------------------------- damaged folders


def test_parts_are_arrow_files_and_a_linked_or_damaged_part_is_one_line(tmp_path):
    import pyarrow as pa

    write(tmp_path / "elsewhere", [rows([0])], finish=False)
    run = tmp_path / "run"
    write(run, [rows([0]), rows([10])], finish=False)
    parts = sorted((run / PARTS).iterdir())
    assert [p.suffix for p in parts] == [".arrow", ".arrow"]
    for p in parts:
        assert pa.ipc.open_file(pa.memory_map(str(p))).read_all().num_rows == len(rows([0])["step"])
    first = parts[0]
    data = first.read_bytes()
    first.unlink()
    first.symlink_to(next((tmp_path / "elsewhere" / PARTS).iterdir()))
    with pytest.raises(store.DamagedRun, match=f"{first.name} is a symbolic link"):
        store.read_table(run, "units")
    first.unlink()
    first.write_bytes(data[: len(data) // 2])
    with pytest.raises(store.DamagedRun) as e:
        store.read_table(run, "units")
    assert e.value.reason.startswith(f"{PARTS}/{first.name} is truncated or not an Arrow file")
    assert "\n" not in str(e.value)
    with pytest.raises(store.IcsError, match=f"{first.name} is truncated"):
        UnitsLog(run, fresh=False).finish()




@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_units_parquet_is_one_line_naming_it(tmp_path, damage):
    final = write(tmp_path, [rows([0, 10])])
    data = final.read_bytes()
    final.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"PAR1 not parquet at all",
                       "empty": b""}[damage])
    with pytest.raises(store.DamagedRun) as e:
        store.read_table(tmp_path, "units")
    assert e.value.reason.startswith("units.parquet is truncated or not Parquet")
    assert "\n" not in str(e.value)


def test_a_units_parquet_with_a_row_twice_or_without_a_column_is_damaged(tmp_path):
    import pyarrow.parquet as pq

    block = rows([0])
    pq.write_table(_arrow_table(_block(join(block, cut(block, [1])[0]))), tmp_path / "units.parquet")
    with pytest.raises(store.DamagedRun, match="units.parquet holds step 0, layer hidden1, site linear, "
                                               "unit 0 twice"):
        store.read_table(tmp_path, "units")
    pq.write_table(_arrow_table(_block(block)).drop_columns(["unit"]), tmp_path / "units.parquet")
    with pytest.raises(store.DamagedRun, match="units.parquet is not a units log: no column unit"):
        store.read_table(tmp_path, "units")


def test_a_linked_units_file_or_parts_folder_is_not_read(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    final = write(elsewhere, [rows([0])])
    run = tmp_path / "run"
    run.mkdir()
    (run / final.name).symlink_to(final)
    with pytest.raises(store.DamagedRun, match=f"{final.name} is a symbolic link"):
        store.read_table(run, "units")
    (run / final.name).unlink()
    write(elsewhere / "unfinished", [rows([0])], finish=False)
    (run / PARTS).symlink_to(elsewhere / "unfinished" / PARTS)
    with pytest.raises(store.DamagedRun, match=f"{PARTS} is a symbolic link"):
        store.read_table(run, "units")
    with pytest.raises(store.IcsError, match="does not write through links"):
        UnitsLog(run, fresh=False).append(rows([10]))
    assert len(list((elsewhere / "unfinished" / PARTS).iterdir())) == 1     # nothing written there


# --------------------------------------------------------------------------- export


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    write(folder, [rows([0]), rows([10, 20])])
    return folder


def test_export_writes_a_csv_that_pandas_reads_back_equal(run, tmp_path, capsys):
    dest = tmp_path / "units.csv"
    assert store.export_table(run, "units", dest) == dest
    table = store.read_table(run, "units")
    pd.testing.assert_frame_equal(pd.read_csv(dest).astype(table.dtypes.to_dict()), table)
    assert main(["export", str(run)]) == 0             # to stdout, the same text
    assert capsys.readouterr().out == dest.read_text()
    out = tmp_path / "cli.csv"
    assert main(["export", str(run), "--table", "units", "--out", str(out)]) == 0
    assert out.read_bytes() == dest.read_bytes()


def test_export_of_a_csv_table_reads_back_equal(run, tmp_path):
    (run / "metrics.csv").write_text("step,test_acc,lr\n0,0.1,0.5\n10,,0.5\n")
    dest = tmp_path / "metrics.csv"
    assert main(["export", str(run), "--table", "metrics", "--out", str(dest)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(dest), store.read_table(run, "metrics"))


@pytest.mark.parametrize("args, needle", [
    (["--table", "weights"], "'weights' is not one of 'metrics', 'layers', 'units', 'grads'"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/no/such/folder.csv"], "does not exist"),
])
def test_ics_export_bad_input_is_one_line_exit_2(run, tmp_path, capsys, args, needle):
    args = [a.format(tmp=tmp_path) for a in args]
    error_line(main(["export", str(run), *args]), capsys, needle)


def test_ics_export_of_no_run_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("ics: error: no such folder")
    assert main(["export", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_the_cli_offers_exactly_the_stored_tables():
    assert [t.value for t in Table] == list(store.TABLES)


def test_a_damaged_table_is_not_exported(run, tmp_path, capsys):
    final = next(p for p in run.iterdir() if p.name.startswith("units."))
    final.write_bytes(final.read_bytes()[:20])
    dest = tmp_path / "out.csv"
    assert main(["export", str(run), "--out", str(dest)]) == 2
    assert f"{final.name} is truncated" in capsys.readouterr().err and not dest.exists()


def test_export_to_a_parquet_name_writes_parquet(run, tmp_path):
    """`--out x.parquet` writes Parquet, not CSV text under a Parquet name; the values are the table's."""
    dest = tmp_path / "units.parquet"
    assert main(["export", str(run), "--table", "units", "--out", str(dest)]) == 0
    assert dest.read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(pd.read_parquet(dest), store.read_table(run, "units"))
