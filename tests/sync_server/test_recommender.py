"""The recommender: scores, decay, lists, personal lists, and the offline evaluation."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hardware_sim.demo_data import DemoConfig, generate_demo_data
from sync_server.recs_cli import eval_recs, evaluate, read_baskets
from sync_server.services.recommender import (
    AlsoBought,
    RecsConfig,
    bestsellers,
    count,
    decay_weight,
    fit,
    pair_scores,
    personal,
)

REF = datetime(2026, 10, 31, tzinfo=UTC)


# --- pair_scores ----------------------------------------------------------------------------


def test_pair_scores_prefer_a_true_partner_over_a_staple() -> None:
    # pasta (a) bought 100 times: with sauce 30 times (sauce 40 baskets), with milk 60 times
    # (milk in 8000 of 10000 baskets). Raw co-occurrence prefers milk; the score prefers sauce.
    config = RecsConfig()
    sauce, milk = pair_scores([30.0, 60.0], [100.0, 100.0], [40.0, 8000.0], 10_000.0, config)
    assert sauce > milk > 0


def test_pair_scores_damp_rare_pairs_that_raw_lift_loves() -> None:
    # For an item in 100 of 10000 baskets: a partner bought twice, both times with it, has
    # lift 100; a partner in 100 baskets, 40 of them with it, has lift 40. The score ranks the
    # well-supported partner higher.
    n = 10_000.0
    rare, solid = pair_scores([2.0, 40.0], [100.0, 100.0], [2.0, 100.0], n, RecsConfig())
    assert 2.0 * n / (100.0 * 2.0) > 40.0 * n / (100.0 * 100.0)  # raw lift prefers the rare one
    assert solid > rare > 0


def test_pair_scores_below_min_support_are_zero() -> None:
    config = RecsConfig(min_support=3.0)
    scores = pair_scores([1.0, 2.9, 3.0], [10.0] * 3, [10.0] * 3, 100.0, config)
    assert scores[0] == 0 and scores[1] == 0 and scores[2] > 0


def test_pair_scores_shrink_pulls_thin_evidence_down() -> None:
    plain = pair_scores([3.0], [3.0], [3.0], 100.0, RecsConfig(shrink=0.0, power=1.0))[0]
    shrunk = pair_scores([3.0], [3.0], [3.0], 100.0, RecsConfig(shrink=3.0, power=1.0))[0]
    assert shrunk == pytest.approx(plain / 2)


def test_power_keeps_each_list_in_order_but_lets_one_strong_partner_win_a_sum() -> None:
    # Two visible items; candidate x is a strong partner of one, y a middling partner of both.
    c_ab, c_a, c_b = [8.0, 5.0, 5.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.0]
    linear = pair_scores(c_ab, c_a, c_b, 100.0, RecsConfig(power=1.0))
    squared = pair_scores(c_ab, c_a, c_b, 100.0, RecsConfig(power=2.0))
    assert np.argsort(linear).tolist() == np.argsort(squared).tolist()
    assert linear[0] < linear[1] + linear[2]  # summed, y (two middling scores) beats x
    assert squared[0] > squared[1] + squared[2]  # squared, the strong partner x wins


def test_pair_scores_empty_data_and_zero_counts_are_zero() -> None:
    assert pair_scores([5.0], [5.0], [5.0], 0.0, RecsConfig()).tolist() == [0.0]
    assert pair_scores([5.0], [0.0], [0.0], 10.0, RecsConfig()).tolist() == [0.0]


@given(
    scale=st.floats(min_value=0.01, max_value=100.0),
    c_ab=st.floats(min_value=2.0, max_value=50.0),
    extra_a=st.floats(min_value=0.0, max_value=500.0),
    extra_b=st.floats(min_value=0.0, max_value=500.0),
)
def test_pair_scores_scale_with_the_counts_so_the_decay_reference_does_not_reorder(
    scale: float, c_ab: float, extra_a: float, extra_b: float
) -> None:
    # Moving the forward-decay reference multiplies every count by the same factor; without
    # shrink and support cut-off (shrink is 0 by default) the score does not change at all.
    config = RecsConfig(shrink=0.0, min_support=0.0)
    c_a, c_b = c_ab + extra_a, c_ab + extra_b
    base = pair_scores([c_ab], [c_a], [c_b], 1000.0, config)[0]
    scaled = pair_scores([c_ab * scale], [c_a * scale], [c_b * scale], 1000.0 * scale, config)[0]
    assert scaled == pytest.approx(base, rel=1e-9)


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="alpha"):
        RecsConfig(alpha=1.5)
    with pytest.raises(ValueError, match="top_n"):
        RecsConfig(top_n=0)


# --- decay ----------------------------------------------------------------------------------


def test_decay_weight_halves_every_half_life_and_grows_forward() -> None:
    assert decay_weight(REF, reference=REF, half_life_days=90) == 1.0
    older = decay_weight(REF - timedelta(days=90), reference=REF, half_life_days=90)
    newer = decay_weight(REF + timedelta(days=180), reference=REF, half_life_days=90)
    assert older == pytest.approx(0.5)
    assert newer == pytest.approx(4.0)
    assert decay_weight(REF - timedelta(days=900), reference=REF, half_life_days=0) == 1.0


def test_decay_weight_of_arrays_matches_scalars() -> None:
    seconds = np.array([REF.timestamp() - 45 * 86_400, REF.timestamp()])
    stamps = np.array(["2026-09-16T00:00:00", "2026-10-31T00:00:00"], dtype="datetime64[s]")
    expected = [2 ** (-0.5), 1.0]
    assert decay_weight(seconds, reference=REF, half_life_days=90) == pytest.approx(expected)
    assert decay_weight(stamps, reference=REF, half_life_days=90) == pytest.approx(expected)


def test_decay_weight_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        decay_weight(datetime(2026, 1, 1), reference=REF, half_life_days=90)


# --- fit and lists --------------------------------------------------------------------------

# items: 0 milk (staple), 1 pasta, 2 sauce, 3 cheese, 4 phone, 5 case
BASKETS = (
    [[0, 1, 2]] * 6
    + [[0, 1, 3]] * 3
    + [[1, 2]] * 2
    + [[0]] * 20
    + [[0, 4, 5]] * 3
    + [[4, 5]] * 2
    + [[0, 2]] * 4
)


def test_fit_finds_partners_not_the_staple() -> None:
    lists = fit(BASKETS, n_items=6, config=RecsConfig(min_support=2))
    assert lists.top(1, 1)[0][0] == 2  # pasta -> sauce, not milk
    assert lists.top(4, 1)[0][0] == 5  # phone -> case
    assert all(item != 4 for item, _ in lists.top(4, 10))
    assert lists.top(99, 3) == []
    assert set(lists.lists(2)) == {0, 1, 2, 3, 4, 5}
    assert all(len(v) <= 2 for v in lists.lists(2).values())


def test_fit_counts_an_item_once_per_basket_and_respects_top_n() -> None:
    once = fit([[1, 2]] * 3, n_items=3, config=RecsConfig(min_support=0))
    twice = fit([[1, 1, 2, 2]] * 3, n_items=3, config=RecsConfig(min_support=0))
    assert once.top(1, 5) == twice.top(1, 5)
    wide = fit([[0, 1, 2, 3, 4]] * 3, n_items=5, config=RecsConfig(min_support=0, top_n=2))
    assert len(wide.top(0, 10)) == 2


def test_fit_with_times_weighs_recent_baskets_more() -> None:
    # Pasta went with sauce a year ago, with pesto lately: decay ranks pesto first.
    baskets = [[1, 2]] * 5 + [[1, 6]] * 4
    day = 86_400.0
    times = np.array([REF.timestamp() - 365 * day] * 5 + [REF.timestamp()] * 4)
    config = RecsConfig(half_life_days=30, min_support=0)
    assert fit(baskets, n_items=7, times=times, config=config).top(1, 1)[0][0] == 6
    assert fit(baskets, n_items=7, config=config).top(1, 1)[0][0] == 2


def test_count_is_symmetric_and_matches_pairs() -> None:
    counts = count(BASKETS, n_items=6, config=RecsConfig(half_life_days=0))
    dense = counts.pairs.toarray()
    assert (dense == dense.T).all()
    assert dense[1, 2] == 8 and dense[0, 0] == 36
    assert counts.items.tolist() == [36.0, 11.0, 12.0, 3.0, 5.0, 5.0]
    assert counts.n_baskets == len(BASKETS)


def test_fit_refuses_items_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.2"):
        fit([[0, 3]], n_items=3)


# --- bestsellers and personal lists ---------------------------------------------------------


def test_bestsellers_best_first_ties_by_item_and_no_zero_counts() -> None:
    assert bestsellers([3, 9, 9, 0, 1], 10) == [1, 2, 0, 4]
    assert bestsellers([3, 9], 0) == []


def test_personal_scores_by_history_and_skips_the_customers_staples() -> None:
    lists = fit(BASKETS, n_items=6, config=RecsConfig(min_support=2))
    ranked = personal([(1, 1.0), (0, 3.0)], lists, exclude_staples={0}, n=3)
    items = [item for item, _ in ranked]
    assert 0 not in items
    assert items[0] == 2
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_personal_cold_start_falls_back_to_bestsellers() -> None:
    lists = fit(BASKETS, n_items=6)
    popular = bestsellers(count(BASKETS, n_items=6, config=RecsConfig()).items, 6)
    ranked = personal([], lists, exclude_staples={0}, n=3, fallback=popular)
    assert [item for item, _ in ranked] == [i for i in popular if i != 0][:3]
    assert all(score == 0.0 for _, score in ranked)


def test_also_bought_from_pairs_drops_self_pairs_and_zero_scores() -> None:
    lists = AlsoBought.from_pairs(
        [0, 0, 0, 1], [0, 1, 2, 0], [9.0, 1.0, 0.0, 2.0], n_items=3, top_n=5
    )
    assert lists.top(0, 5) == [(1, 1.0)]
    assert lists.top(1, 5) == [(0, 2.0)]
    assert lists.top(2, 5) == []


def test_fit_scales_to_many_baskets() -> None:
    # A scaled-down version of the 1M-basket benchmark (docs/recommendations.md): 100k
    # baskets, 20k items, ~500k lines must fit in a few seconds.
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 10, 100_000)
    popularity = 1.0 / np.arange(1, 20_001) ** 0.9
    items = rng.choice(20_000, int(sizes.sum()), p=popularity / popularity.sum())
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    baskets = [items[bounds[i] : bounds[i + 1]].tolist() for i in range(sizes.size)]
    started = time.perf_counter()
    lists = fit(baskets, n_items=20_000)
    assert time.perf_counter() - started < 15
    assert lists.top(0, 5)


# --- the evaluation -------------------------------------------------------------------------


def test_eval_reads_groceries_layout_and_prints_json(tmp_path: Path) -> None:
    rows = ["whole milk,yogurt,rolls/buns", "pasta,tomato sauce", "pasta,tomato sauce,milk"]
    path = tmp_path / "groceries.csv"
    path.write_text("\n".join(rows * 20) + "\n", encoding="utf-8")
    data = read_baskets(path)
    assert data.times is None
    assert data.names[:3] == ["whole milk", "yogurt", "rolls/buns"]
    result = CliRunner().invoke(eval_recs, ["--baskets", str(path), "--json", "--seed", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"omnitill", "popularity", "cooccurrence", "mlxtend"}
    for values in payload.values():
        assert set(values) == {"hr@1", "hr@3", "hr@5", "hr@10", "mrr", "seconds"}
        assert 0 <= values["hr@1"] <= values["hr@3"] <= values["hr@10"] <= 1


def test_eval_refuses_a_file_without_enough_baskets(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("a,b\n", encoding="utf-8")
    result = CliRunner().invoke(eval_recs, ["--baskets", str(path)])
    assert result.exit_code == 1
    assert "at least 10" in result.output


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-small")
    generate_demo_data(out, DemoConfig(products=600, customers=1500, orders=8000))
    return out / "orders.jsonl"


def test_omnitill_beats_the_baselines_on_small_demo_data(small_demo: Path) -> None:
    data = read_baskets(small_demo)
    assert data.times is not None and len(data.baskets) == 8000
    # 0.001 of 6400 training baskets is about the same number of baskets (6) as the default
    # support on the default demo data, and keeps this test fast.
    results = evaluate(data, seed=0, mlxtend_support=0.001)
    ours = results["omnitill"]
    for name in ("popularity", "cooccurrence", "mlxtend"):
        assert ours["hr@3"] > results[name]["hr@3"], (name, results)
        assert ours["mrr"] > results[name]["mrr"], (name, results)
    assert results["cooccurrence"]["mrr"] > results["popularity"]["mrr"], results


def test_eval_prints_a_table_by_default(small_demo: Path) -> None:
    result = CliRunner().invoke(
        eval_recs, ["--baskets", str(small_demo), "--mlxtend-support", "0.01", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["method", "hr@1", "hr@3", "hr@5", "hr@10", "mrr", "seconds"]
    assert [line.split()[0] for line in lines[2:]] == [
        "omnitill",
        "popularity",
        "cooccurrence",
        "mlxtend",
    ]


def test_must_show_on_default_demo_data(tmp_path: Path) -> None:
    """Issue 6: beats every baseline on hr@3 and mrr; >= 10x faster than mlxtend."""
    generate_demo_data(tmp_path, DemoConfig())
    result = CliRunner().invoke(
        eval_recs, ["--baskets", str(tmp_path / "orders.jsonl"), "--json", "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.output)
    ours = results["omnitill"]
    for name in ("popularity", "cooccurrence", "mlxtend"):
        assert ours["hr@3"] > results[name]["hr@3"], (name, results)
        assert ours["mrr"] > results[name]["mrr"], (name, results)
    for metric in ("hr@1", "hr@3", "hr@5", "hr@10", "mrr"):
        assert ours[metric] >= results["mlxtend"][metric], (metric, results)
    assert ours["seconds"] * 10 <= results["mlxtend"]["seconds"], results
