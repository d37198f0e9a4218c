"""Word count: the classic first Spark program.

    python sample_jobs/wordcount.py [INPUT [OUTPUT]]
    sparkctl submit --master local[2] sample_jobs/wordcount.py [INPUT [OUTPUT]]

Counts the words of INPUT (a file, directory or glob; default: the bundled
``sample_jobs/data/words.txt``), prints the ten most frequent and, when OUTPUT is given,
saves every ``word<TAB>count`` with saveAsTextFile (OUTPUT must not exist yet).
"""
import os
import re
import sys
from operator import add

try:
    from sparkctl import SparkContext
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkctl import SparkContext

DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "words.txt")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(line):
    return _WORD.findall(line.lower())


def by_count_then_word(kv):
    return (-kv[1], kv[0])


def main(argv):
    if len(argv) > 3:
        print("usage: wordcount.py [INPUT [OUTPUT]]", file=sys.stderr)
        return 2
    path = argv[1] if len(argv) > 1 else DEFAULT_INPUT
    output = argv[2] if len(argv) > 2 else None

    sc = SparkContext(appName="PythonWordCount")
    try:
        counts = (sc.textFile(path)
                  .flatMap(words)
                  .map(lambda w: (w, 1))
                  .reduceByKey(add)
                  .cache())
        top = counts.takeOrdered(10, key=by_count_then_word)
        total = counts.values().sum()
        distinct = counts.count()
        print(f"{total} words, {distinct} distinct, in {path}")
        print("Top 10 words:")
        for word, n in top:
            print(f"  {word:<12} {n:>6}")
        if output:
            counts.sortBy(by_count_then_word).map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile(output)
            print(f"Saved {distinct} counts to {output}")
    finally:
        sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
