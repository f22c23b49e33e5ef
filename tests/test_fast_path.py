"""The single-bill fast path gives exactly what the batch path gives, on both engines."""

import numpy as np
import pytest

from medsettle.engine import Population, Settler
from medsettle.engine.results import mirror_row
from medsettle.policy import load_default_policy
from medsettle.sim import generate_bills

POLICY = load_default_policy()


def _args(batch, i):
    a, b = int(batch.line_start[i]), int(batch.line_start[i + 1])
    return (
        int(batch.person[i]),
        int(batch.day[i]),
        int(batch.med_type[i]),
        int(batch.tier[i]),
        int(batch.treat_region[i]),
        int(batch.acct_flag[i]),
        int(batch.adm[i]),
        int(batch.saf_cash[i]),
        batch.item[a:b].tolist(),
        batch.pric[a:b].tolist(),
        batch.cnt[a:b].tolist(),
        batch.appr[a:b].tolist(),
    )


def test_fast_path_equals_batch(engine):
    population = Population.generate(POLICY, 300, seed=3)
    batch_settler = Settler(POLICY, population, engine="core")
    fast_settler = Settler(POLICY, population, engine=engine)
    stream = generate_bills(batch_settler.compiled, population, 800, seed=4, days=400, persons="zipf")
    expected = batch_settler.run_batch(stream.batch)
    fast = fast_settler.fast_path()
    for i in range(len(stream.batch)):
        status = fast.settle(*_args(stream.batch, i))
        assert status == expected.out[i, 0]
        assert np.array_equal(fast.out, expected.out[i]), i
        a, b = int(stream.batch.line_start[i]), int(stream.batch.line_start[i + 1])
        if status == 0:
            assert np.array_equal(fast.lines[: b - a], expected.lines[a:b])
    for p in range(len(population)):
        assert fast_settler.engine.get_state(p) == batch_settler.engine.get_state(p)


def test_fast_path_presettle_changes_nothing_and_bad_indices_raise(engine):
    population = Population.generate(POLICY, 10, seed=3)
    s = Settler(POLICY, population, engine=engine)
    stream = generate_bills(s.compiled, population, 5, seed=4)
    fast = s.fast_path()
    before = [s.engine.get_state(p) for p in range(10)]
    fast.settle(*_args(stream.batch, 0), presettle=True)
    assert [s.engine.get_state(p) for p in range(10)] == before
    good = list(_args(stream.batch, 0))
    for position, value in ((0, 10), (0, -1), (2, 5), (3, 4), (8, [10**6]), (9, [-1]), (10, [0])):
        bad = list(good)
        bad[position] = value if not isinstance(value, list) else value * len(good[8])
        with pytest.raises(ValueError):
            fast.settle(*bad)
    assert [s.engine.get_state(p) for p in range(10)] == before


def test_a_batch_settled_in_slices_equals_the_whole(engine):
    population = Population.generate(POLICY, 200, seed=5)
    whole = Settler(POLICY, population, engine=engine)
    parts = Settler(POLICY, population, engine=engine)
    stream = generate_bills(whole.compiled, population, 500, seed=6, persons="zipf", days=30)
    expected = whole.run_batch(stream.batch)
    got = [parts.run_batch(stream.batch.slice(a, min(a + 70, 500))) for a in range(0, 500, 70)]
    assert np.array_equal(np.concatenate([g.out for g in got]), expected.out)
    assert np.array_equal(np.concatenate([g.lines for g in got]), expected.lines)


def test_records_are_kept_out_of_the_cyclic_collector(engine):
    """Settlement records hold only atoms, so with the compiled core they are untracked (gc_untrack):
    they stay readable, cancellable and collectable by reference counting."""
    import gc

    from medsettle.engine.backends import core_module

    population = Population.generate(POLICY, 50, seed=3)
    s = Settler(POLICY, population, engine=engine)
    stream = generate_bills(s.compiled, population, 20, seed=4, days=30)
    records = [s.settle(stream.bill_dict(i)) for i in range(20)]
    mirror = s.cancel(records[0].setl_id)
    tracked = core_module() is None
    assert {gc.is_tracked(r) for r in records + [mirror]} == {tracked}
    gc.collect()
    assert s.records[records[0].setl_id].cancelled_by == mirror.setl_id
    assert np.array_equal(mirror.row, mirror_row(records[0].row, mirror.balc))
    assert records[5].row.flags.writeable is False  # a view of the record's bytes, not a copy to change
