"""The house rules (DEVELOPERS.md, "The house"), checked on the source, and the worked example of where a
new quantity goes: registered in one place, it reaches the run folder, `ics export`, the compare tables
and their long tables."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ics_cli"
SPINE = {"__init__", "__main__", "cli", "config", "train", "probes", "metrics", "errors"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Import arrows between ics_cli modules (imports inside functions count), and every import of
    another module's underscore name."""
    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    arrows, private = {m: set() for m in mods}, []
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names if a.name.startswith("ics_cli")]
                arrows[mod] |= {t for t in targets if t and t != mod}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                if not base.startswith("ics_cli"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in mods else resolve(base)
                    if target and target != mod:
                        arrows[mod].add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and resolve(base) != mod:
                        private.append(f"{mod} imports {full}")
    return arrows, private


def cycles(arrows: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in arrows[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in arrows:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_and_no_private_import():
    mods = modules()
    arrows, private = imports(mods)
    assert cycles(arrows) == []
    assert private == []


def test_the_cycle_finder_finds_a_planted_cycle():
    """The check above can fail: two modules importing each other are a cycle, a one-way import is not."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_spine_is_short_and_every_module_reads_in_one_sitting():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= SPINE, f"files directly in ics_cli/ beyond the spine: {sorted(top - SPINE)}"
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    assert {m: n for m, n in sizes.items() if n > 600} == {}


def test_train_reads_like_a_textbook_loop():
    """train() at most 80 lines, and its training loop's body at most 40."""
    tree = ast.parse((PACKAGE / "train.py").read_text())
    [train] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train"]
    assert train.end_lineno - train.lineno + 1 <= 80
    loops = [n for n in ast.walk(train) if isinstance(n, ast.While)]
    assert loops, "train() has no `while step < cfg.steps` loop"
    body = loops[0].body
    assert body[-1].end_lineno - body[0].lineno + 1 <= 40


TOY = textwrap.dedent('''
    """A toy quantity, registered in one place, then the CLI run as usual."""
    import sys

    import torch

    from ics_cli import quantities
    from ics_cli.quantities import Quantity


    @quantities.register
    class WeightSquare(Quantity):
        """Σ w² over every parameter, at the cadence of --ics-every (it has no option of its own)."""
        name = "toy_weight"
        columns = ("step", "weight_sq", "lr")
        keys = ("step",)
        every_field = "ics_every"
        option = "--ics-every"

        def measure(self, probe):
            total = sum(float((p.double() ** 2).sum()) for p in probe.before.values())
            return [[probe.step, total, probe.lr]]


    from ics_cli.cli import main

    out = sys.argv[1]
    for argv in (["train", "--steps", "20", "--ics-every", "5", "--log-every", "10", "--eval-every", "10",
                  "--width", "16", "--seed", "0", "--out", out],
                 ["train", "--steps", "20", "--ics-every", "5", "--log-every", "10", "--eval-every", "10",
                  "--width", "16", "--seed", "1", "--out", out],
                 ["compare", out, "--out", out + "/compare"]):
        code = main(argv)
        if code:
            sys.exit(code)
    sys.exit(main(["export", "table", "--help"]))
''')


def test_a_quantity_registered_in_one_place_reaches_every_table(tmp_path):
    """The worked example of DEVELOPERS.md: one `quantities.register` and nothing else."""
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    runs = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(script), str(runs)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "toy_weight" in done.stdout                       # an `ics export --table` choice
    folders = sorted(p for p in runs.iterdir() if (p / "summary.json").exists())
    assert len(folders) == 2
    for folder in folders:                                   # the run folder's own table
        rows = pd.read_csv(folder / "toy_weight.csv")
        assert list(rows.columns) == ["step", "weight_sq", "lr"]
        assert list(rows["step"]) == [0, 5, 10, 15] and (rows["weight_sq"] > 0).all()
    wide = pd.read_csv(runs / "compare" / "toy_weight_curves.csv")      # the compare table
    assert {"weight_sq_mean", "weight_sq_ci_low", "weight_sq_ci_high", "n_seeds"} <= set(wide.columns)
    assert list(wide["n_seeds"]) == [2] * 4
    long = pd.read_csv(runs / "compare" / "long" / "toy_weight_curves.csv")   # its per-seed rows
    assert len(long) == 8 and sorted(set(long["seed"])) == [0, 1]
    # The wide mean is the mean of the long rows, step by step.
    means = long.groupby("step")["weight_sq"].mean().to_numpy()
    assert abs(wide.sort_values("step")["weight_sq_mean"].to_numpy() - means).max() < 1e-6 * means.max()
