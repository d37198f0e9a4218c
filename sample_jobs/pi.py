"""Estimate pi by throwing darts at the unit square (Monte Carlo).

    python sample_jobs/pi.py [PARTITIONS]
    sparkctl submit --master local[4] sample_jobs/pi.py 8

Each partition throws 200,000 darts with its own seeded generator, so the estimate is the
same on every run and every master.
"""
import os
import random
import sys
from operator import add

try:
    from sparkctl import SparkContext, SparkConf
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkctl import SparkContext, SparkConf

DARTS_PER_PARTITION = 200_000


def main(argv):
    partitions = int(argv[1]) if len(argv) > 1 else 2
    if partitions < 1:
        print("usage: pi.py [PARTITIONS>=1]", file=sys.stderr)
        return 2
    n = DARTS_PER_PARTITION * partitions

    sc = SparkContext.getOrCreate(SparkConf().setAppName("PythonPi"))
    try:
        def throw(index, darts):
            rnd = random.Random(index).random
            inside = 0
            for _ in darts:
                x = rnd() * 2 - 1
                y = rnd() * 2 - 1
                if x * x + y * y <= 1:
                    inside += 1
            yield inside

        count = sc.parallelize(range(n), partitions).mapPartitionsWithIndex(throw).reduce(add)
        print(f"Pi is roughly {4.0 * count / n:.6f} ({n} darts in {partitions} partitions)")
    finally:
        sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
