"""PageRank over a small generated web graph, PySpark's example algorithm.

    python sample_jobs/pagerank.py [ITERATIONS [PAGES]]

The graph is deterministic: PAGES pages (default 200), each linking to a few others,
with a handful of popular "hub" pages most pages link to. The link lists are cached
(``.cache()``) because every iteration joins them with the current ranks.
"""
import os
import random
import sys
from operator import add

try:
    from sparkctl import SparkContext
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkctl import SparkContext


def make_graph(pages, seed=42):
    """Lines "src dst", as PySpark's pagerank.py reads them from a file."""
    rnd = random.Random(seed)
    hubs = [f"page{i:03d}" for i in range(5)]
    lines = []
    for i in range(pages):
        src = f"page{i:03d}"
        targets = set(rnd.sample(range(pages), rnd.randint(1, 4)))
        targets.discard(i)
        for t in targets:
            lines.append(f"{src} page{t:03d}")
        if rnd.random() < 0.6:
            hub = rnd.choice(hubs)
            if hub != src:
                lines.append(f"{src} {hub}")
    return lines


def parse_neighbors(line):
    src, dst = line.split()
    return src, dst


def compute_contribs(urls, rank):
    urls = list(urls)
    for url in urls:
        yield url, rank / len(urls)


def main(argv):
    iterations = int(argv[1]) if len(argv) > 1 else 10
    pages = int(argv[2]) if len(argv) > 2 else 200

    sc = SparkContext(appName="PythonPageRank")
    try:
        lines = sc.parallelize(make_graph(pages))
        links = lines.map(parse_neighbors).distinct().groupByKey().cache()
        ranks = links.map(lambda url_neighbors: (url_neighbors[0], 1.0))
        for _ in range(iterations):
            contribs = links.join(ranks).flatMap(
                lambda url_urls_rank: compute_contribs(url_urls_rank[1][0], url_urls_rank[1][1]))
            ranks = contribs.reduceByKey(add).mapValues(lambda rank: rank * 0.85 + 0.15)

        result = ranks.collect()
        result.sort(key=lambda kv: (-kv[1], kv[0]))
        print(f"Ranks of {len(result)} linked-to pages ({links.count()} pages link out) after {iterations} iterations")
        print("Top 10:")
        for url, rank in result[:10]:
            print(f"  {url} has rank: {rank:.4f}")
        print(f"Sum of ranks: {sum(r for _, r in result):.4f}")
    finally:
        sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
