"""Property tests: key-value operations over random pairs and random partition counts
agree with plain-Python references (as multisets where PySpark defines no order)."""
from __future__ import annotations

import operator
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    derandomize=False)

# keys: small ints, strings (unicode too), tuples, None; never bools or floats, whose
# equal-but-different values (1 == True, 0.0 == -0.0) make a Python dict a poor reference
scalar_keys = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none())
keys = st.one_of(scalar_keys, st.tuples(scalar_keys, scalar_keys))
values = st.integers(-1000, 1000)
pairs = st.lists(st.tuples(keys, values), max_size=60)
parts = st.integers(1, 8)

# sortByKey needs mutually comparable keys: one key type per example
sortable_keys = st.one_of(
    st.lists(st.tuples(st.integers(-20, 20), values), max_size=60),
    st.lists(st.tuples(st.text(max_size=4), values), max_size=60),
    st.lists(st.tuples(st.tuples(st.integers(0, 3), st.text(max_size=2)), values), max_size=60),
)


def grouped(data):
    g = defaultdict(list)
    for k, v in data:
        g[k].append(v)
    return g


def multiset(items):
    return Counter(map(repr, items))


def as_multiset_of_groups(items):
    return Counter(repr((k, sorted(v))) for k, v in items)


@SETTINGS
@given(data=pairs, n=parts, m=parts)
def test_reduce_by_key(sc, data, n, m):
    out = sc.parallelize(data, n).reduceByKey(operator.add, m).collect()
    ref = {k: sum(vs) for k, vs in grouped(data).items()}
    assert len(out) == len(ref)
    assert dict(out) == ref


@SETTINGS
@given(data=pairs, n=parts, m=st.one_of(st.none(), parts))
def test_group_by_key(sc, data, n, m):
    out = sc.parallelize(data, n).groupByKey(m).collect()
    assert as_multiset_of_groups((k, list(v)) for k, v in out) == as_multiset_of_groups(grouped(data).items())


@SETTINGS
@given(data=pairs, n=parts, m=parts)
def test_combine_by_key(sc, data, n, m):
    out = sc.parallelize(data, n).combineByKey(
        lambda v: (v, 1, [v]), lambda c, v: (c[0] + v, c[1] + 1, c[2] + [v]),
        lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] + b[2]), m).collect()
    ref = grouped(data)
    assert len(out) == len(ref)
    for k, (total, count, items) in out:
        assert total == sum(ref[k]) and count == len(ref[k]) and sorted(items) == sorted(ref[k])


@SETTINGS
@given(data=pairs, n=parts, m=parts, zero=st.integers(-3, 3))
def test_aggregate_by_key(sc, data, n, m, zero):
    rdd = sc.parallelize(data, n)
    out = rdd.aggregateByKey((zero, 0), lambda acc, v: (acc[0] + v, acc[1] + 1),
                             lambda a, b: (a[0] + b[0], a[1] + b[1]), m).collect()
    # the zero enters once per key per input partition
    ref: dict = {}
    for part in rdd.glom().collect():
        for k, vs in grouped(part).items():
            s, c = ref.get(k, (0, 0))
            ref[k] = (s + zero + sum(vs), c + len(vs))
    assert len(out) == len(ref)
    assert dict(out) == ref


@SETTINGS
@given(data=st.lists(st.one_of(keys, values), max_size=60), n=parts, m=st.one_of(st.none(), parts))
def test_distinct(sc, data, n, m):
    out = sc.parallelize(data, n).distinct(m).collect()
    assert len(out) == len(set(data))
    assert set(out) == set(data)


@SETTINGS
@given(a=pairs, b=pairs, n=parts, m=parts, k=st.one_of(st.none(), parts))
def test_joins(sc, a, b, n, m, k):
    ra, rb = sc.parallelize(a, n), sc.parallelize(b, m)
    ga, gb = grouped(a), grouped(b)
    inner = [(key, (v, w)) for key, v in a for w in gb.get(key, [])]
    left = [(key, (v, w)) for key, v in a for w in gb.get(key) or [None]]
    right = [(key, (v, w)) for key, w in b for v in ga.get(key) or [None]]
    full = [(key, (v, w)) for key in set(ga) | set(gb) for v in ga.get(key) or [None] for w in gb.get(key) or [None]]
    assert multiset(ra.join(rb, k).collect()) == multiset(inner)
    assert multiset(ra.leftOuterJoin(rb, k).collect()) == multiset(left)
    assert multiset(ra.rightOuterJoin(rb, k).collect()) == multiset(right)
    assert multiset(ra.fullOuterJoin(rb, k).collect()) == multiset(full)


@SETTINGS
@given(a=pairs, b=pairs, n=parts, m=parts)
def test_cogroup(sc, a, b, n, m):
    out = sc.parallelize(a, n).cogroup(sc.parallelize(b, m)).collect()
    ga, gb = grouped(a), grouped(b)
    assert Counter(repr((k, sorted(x), sorted(y))) for k, (x, y) in out) == \
        Counter(repr((k, sorted(ga.get(k, [])), sorted(gb.get(k, [])))) for k in set(ga) | set(gb))


@SETTINGS
@given(data=sortable_keys, n=parts, m=parts, ascending=st.booleans())
def test_sort_by_key(sc, data, n, m, ascending):
    out = sc.parallelize(data, n).sortByKey(ascending, m).collect()
    assert [k for k, _ in out] == sorted((k for k, _ in data), reverse=not ascending)
    assert multiset(out) == multiset(data)
