"""Sort generated records with sortByKey and sortBy, and check the order.

    python sample_jobs/sort.py [RECORDS [PARTITIONS]]

Records are (key, payload) pairs made in the tasks from a seeded generator. sortByKey
range-partitions on sampled keys, so each output partition holds one key range, in
order; the check looks at every partition's first and last key and its internal order
without collecting the data.
"""
import os
import random
import sys

try:
    from sparkctl import SparkContext
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkctl import SparkContext


def make_records(index, ids):
    rnd = random.Random(index)
    for i in ids:
        yield rnd.randrange(10_000_000), f"record-{i}"


def partition_summary(ordered_by):
    """Per partition: (index, count, first key, last key, sorted inside?)."""
    def summarize(index, it):
        count, first, last, in_order = 0, None, None, True
        for rec in it:
            k = ordered_by(rec)
            if count == 0:
                first = k
            elif k < last:
                in_order = False
            last = k
            count += 1
        yield index, count, first, last, in_order
    return summarize


def check(name, rdd, ordered_by, expected):
    parts = sorted(rdd.mapPartitionsWithIndex(partition_summary(ordered_by)).collect())
    filled = [p for p in parts if p[1]]
    ok = all(p[4] for p in parts) and all(a[3] <= b[2] for a, b in zip(filled, filled[1:]))
    total = sum(p[1] for p in parts)
    ok = ok and total == expected
    sizes = ", ".join(str(p[1]) for p in parts)
    print(f"{name}: {total} records in {len(parts)} partitions ({sizes}): {'in order' if ok else 'NOT IN ORDER'}")
    return ok


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 200_000
    partitions = int(argv[2]) if len(argv) > 2 else 4

    sc = SparkContext(appName="PythonSort")
    try:
        data = sc.range(n, numSlices=partitions).mapPartitionsWithIndex(make_records)

        by_key = data.sortByKey(numPartitions=partitions)
        print("First 5 records by key:")
        for k, v in by_key.take(5):
            print(f"  {k:>8}  {v}")
        ok = check("sortByKey", by_key, lambda kv: kv[0], n)

        # sortBy with a computed key, descending: by payload length, then key
        by_len = data.sortBy(lambda kv: (-len(kv[1]), kv[0]), numPartitions=partitions)
        print("First 3 records by payload length (descending), then key:")
        for k, v in by_len.take(3):
            print(f"  {k:>8}  {v}")
        ok = check("sortBy", by_len, lambda kv: (-len(kv[1]), kv[0]), n) and ok

        descending = data.sortByKey(ascending=False, numPartitions=partitions)
        top = descending.take(3)
        expected_top = data.top(3, key=lambda kv: kv[0])
        same = [k for k, _ in top] == [k for k, _ in expected_top]
        print(f"Largest keys {[k for k, _ in top]} (top() agrees: {same})")
        ok = ok and same
    finally:
        sc.stop()
    if not ok:
        print("ORDER CHECK FAILED", file=sys.stderr)
        return 1
    print("All order checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
