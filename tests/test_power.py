"""Seeds sized before the runs: the MDE formula, UNDERPOWERED and DESIGN CHECK verdicts (claims.py)."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from ics_cli import studies
from ics_cli.studies import claims
from ics_cli.studies.claims import (DESIGN_CHECK, FAIL, PASS, UNDERPOWERED, Change, Claim, Study, directional,
                                    measurement, mde, paired, ratio, seeds_needed)


def test_mde_matches_a_simulated_power_of_80_percent():
    """A true effect of one MDE above the threshold clears a 95% paired t-interval about 80% of the time."""
    sd, n = 0.02, 5
    d = mde(sd, n, 0.95)
    assert d == (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * sd / math.sqrt(n)
    rng = np.random.default_rng(0)
    x = rng.normal(d, sd, size=(20000, n))
    lo = x.mean(1) - stats.t.ppf(0.975, n - 1) * x.std(1, ddof=1) / math.sqrt(n)
    assert 0.77 < (lo > 0).mean() < 0.83


def test_seeds_needed_is_the_fewest_with_mde_within_the_margin():
    n = seeds_needed(0.02, 0.95, 0.02)
    assert mde(0.02, n, 0.95) <= 0.02 < mde(0.02, n - 1, 0.95)
    assert seeds_needed(1.0, 0.95, 1e-4) is None


def test_intervals_carry_their_sd_confidence_and_scale():
    a = {s: v for s, v in enumerate([1.0, 2.0, 4.0])}
    b = {s: 1.0 for s in range(3)}
    iv = paired(a, b, 0.975)
    assert iv.sd == np.std([0.0, 1.0, 3.0], ddof=1) and iv.confidence == 0.975 and not iv.log
    r = ratio(a, b)
    assert r.log and math.isclose(r.sd, np.std(np.log([1, 2, 4]), ddof=1))


def _study(margin, design=None, history=()):
    def measure(ctx):
        iv = paired(ctx, {s: 0.0 for s in ctx})
        return measurement(iv, directional(iv.lo, iv.hi, ">", 0.0), "seen.")
    claim = Claim("X1", "x is positive", "test", "x", "x > 0", None, measure, margin=margin, design=design)
    return Study("t", "t", "t", "", lambda *a, **k: None, [claim], history=list(history))


def test_a_claim_whose_pilot_mde_exceeds_its_margin_is_underpowered_whatever_its_data():
    data = {s: 1.0 + 0.01 * s for s in range(5)}          # clearly positive: PASS on the data alone
    pilot = pd.DataFrame([{"claim_id": "X1", "sd": 0.5}])   # but a noisy pilot: MDE ≈ 0.9
    assert studies.measure(_study(margin=0.1), data)["verdict"][0] == PASS
    row = studies.measure(_study(margin=0.1), data, pilot).iloc[0]
    assert row["verdict"] == UNDERPOWERED and row["mde"] > 0.1 and "would have read PASS" in row["seen"]
    quiet = pd.DataFrame([{"claim_id": "X1", "sd": 0.01}])
    assert studies.measure(_study(margin=0.1), data, quiet)["verdict"][0] == PASS
    # The same for a FAIL: an underpowered claim is not decided in either direction.
    negative = {s: -1.0 - 0.01 * s for s in range(5)}
    assert studies.measure(_study(margin=0.1), negative)["verdict"][0] == FAIL
    assert studies.measure(_study(margin=0.1), negative, pilot)["verdict"][0] == UNDERPOWERED


def test_a_design_check_is_neither_pass_nor_fail_and_does_not_count():
    data = {s: 1.0 + 0.01 * s for s in range(5)}
    v = studies.measure(_study(margin=None, design="the protocol makes it move."), data)
    assert v["verdict"][0] == DESIGN_CHECK and v["seen"][0].startswith("Not a test here")
    assert studies.tally(v["verdict"]) == "0 PASS, 0 FAIL, 0 INCONCLUSIVE, 1 DESIGN CHECK"


def test_a_change_after_the_data_marks_its_claim():
    data = {s: 1.0 + 0.01 * s for s in range(5)}
    v = studies.measure(_study(0.1, history=[Change("X1", "abc123", "threshold 5 to 3", "a release read 3.2")]), data)
    assert v["changed_after_data"][0] == "yes"
    assert studies.measure(_study(0.1), data)["changed_after_data"][0] == "no"


def test_every_verdict_has_a_meaning_and_tests_are_a_subset():
    assert set(claims.TESTS) < set(claims.VERDICTS)
    assert all(claims.VERDICTS.values())
