"""Apache Spark's own Python RDD examples, run with only their imports changed.

The examples come from the installed pyspark wheel (``pyspark/examples/src/main/python``);
at test time each is copied with ``pyspark`` replaced by ``sparkctl`` in its import lines and
run with ``sparkctl submit`` on small inputs. Their output is compared with what plain Python
computes (the examples' own helper functions, called without Spark, give the reference).
Examples that read their input with ``spark.read.text(..).rdd`` (a DataFrame turned into an
RDD of Rows) run unchanged too and must print plain Python's results.
"""
from __future__ import annotations

import importlib.util
import math
import os
import random
import re
import runpy
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)


def _examples_dir() -> Path | None:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "examples" / "src" / "main" / "python"
        if (path / "pi.py").is_file():
            return path
    return None


EXAMPLES = _examples_dir()
if EXAMPLES is None:
    pytest.skip("Apache Spark's Python examples are not installed: pyspark (the `test` extra, pyspark==4.3.0) "
                "ships them under pyspark/examples/src/main/python", allow_module_level=True)

_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)pyspark\b", re.M)


def port(name: str, dest: Path) -> Path:
    """The example *name* with ``pyspark`` replaced by ``sparkctl`` in its imports, and nothing else."""
    text = (EXAMPLES / f"{name}.py").read_text()  # type: ignore[operator]
    ported, n = _IMPORT.subn(r"\1sparkctl", text)
    assert n >= 1, f"{name}.py imports nothing from pyspark"
    path = dest / f"{name}.py"
    path.write_text(ported)
    return path


def submit(script: Path, *args: str, master: str = "local[2]", cwd: Path, conf: tuple[str, ...] = (),
           timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(cwd))
    confs = [arg for setting in ("spark.ui.showConsoleProgress=false", *conf) for arg in ("--conf", setting)]
    return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", master, *confs,
                           str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def helpers(script: Path, **module_globals: Any) -> dict[str, Any]:
    """The example's module-level functions, loaded without running its main block."""
    names = runpy.run_path(str(script), run_name="example_helpers")
    for value in names.values():
        if callable(value) and hasattr(value, "__globals__"):
            value.__globals__.update(module_globals)
    return names


def stdout_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return [ln for ln in result.stdout.splitlines() if ln.strip()]


# ----------------------------------------------------------------------------- RDD-only examples
@pytest.mark.parametrize("master", ["local[2]", "local-cluster[2,1,512]"])
def test_pi(tmp_path: Path, master: str) -> None:
    r = submit(port("pi", tmp_path), "4", master=master, cwd=tmp_path)
    (line,) = [ln for ln in stdout_lines(r) if ln.startswith("Pi is roughly")]
    assert abs(float(line.split()[-1]) - math.pi) < 0.05  # 400,000 random darts


def _closure(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    paths = set(edges)
    while True:
        longer = {(x, z) for (x, y) in edges for (y2, z) in paths if y == y2} | paths
        if longer == paths:
            return paths
        paths = longer


@pytest.mark.parametrize("master", ["local[2]", "local-cluster[2,1,512]"])
def test_transitive_closure(tmp_path: Path, master: str) -> None:
    script = port("transitive_closure", tmp_path)
    # each round's union doubles the partitions, and distinct() keeps them unless
    # spark.default.parallelism is set (in PySpark as here): 14 rounds would make 50,000 tasks
    r = submit(script, "3", master=master, cwd=tmp_path, conf=("spark.default.parallelism=4",))
    edges = helpers(script)["generateGraph"]()  # the example's seeded graph, made again
    assert f"TC has {len(_closure(edges))} edges" in stdout_lines(r)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")  # the example's numpy.matrix
@pytest.mark.parametrize("master", ["local[2]", "local-cluster[2,1,512]"])
def test_als(tmp_path: Path, master: str) -> None:
    np = pytest.importorskip("numpy")
    script = port("als", tmp_path)
    m, u, f, iterations = 12, 20, 4, 3
    r = submit(script, str(m), str(u), str(f), str(iterations), "3", master=master, cwd=tmp_path)
    printed = [ln for ln in stdout_lines(r) if ln.startswith("RMSE:")]
    # plain Python: the example's update() and rmse(), on the same seeded matrices, no Spark
    fns = helpers(script, M=m, U=u)  # loading it seeds numpy's generator as the run did
    rand, matrix, update = np.random.rand, np.matrix, fns["update"]
    ratings = matrix(rand(m, f)) * matrix(rand(u, f).T)
    ms, us = matrix(rand(m, f)), matrix(rand(u, f))
    expected = []
    for _ in range(iterations):
        ms = matrix(np.array([update(x, us, ratings) for x in range(m)])[:, :, 0])
        us = matrix(np.array([update(x, ms, ratings.T) for x in range(u)])[:, :, 0])
        expected.append("RMSE: %5.4f" % fns["rmse"](ratings, ms, us))
    assert printed == expected


@pytest.mark.parametrize("master", ["local[10]", "local-cluster[2,2,512]"])
def test_status_api_demo(tmp_path: Path, master: str) -> None:
    r = submit(port("status_api_demo", tmp_path), master=master, cwd=tmp_path)
    lines = stdout_lines(r)
    assert any(re.match(r"Job \d+ status:\s+RUNNING", ln) for ln in lines), lines
    assert any(re.match(r"Stage \d+: 10 tasks total \(\d+ active, \d+ complete\)", ln) for ln in lines), lines
    assert lines[-1] == "Job results are: " + str([(x, 1) for x in range(10)])


# ----------------------------------------------------------------------------- examples that read with DataFrames
def _words_file(tmp_path: Path) -> Path:
    rng = random.Random(3)
    vocab = ["spark", "rdd", "task", "stage", "shuffle", "driver", "executor", "block"]
    path = tmp_path / "words.txt"
    path.write_text("\n".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(300)))
    return path


def _numbers_file(tmp_path: Path) -> Path:
    rng = random.Random(4)
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(" ".join(str(rng.randint(-500, 500)) for _ in range(5)) for _ in range(100)))
    return path


def _links_file(tmp_path: Path) -> Path:
    rng = random.Random(5)
    urls = [f"url_{i}" for i in range(12)]
    links = {(a, b) for a in urls for b in rng.sample(urls, 3) if a != b}
    path = tmp_path / "links.txt"
    path.write_text("\n".join(f"{a} {b}" for a, b in sorted(links)))
    return path


def _points_file(tmp_path: Path, dims: int, labelled: bool) -> Path:
    rng = random.Random(6)
    rows = []
    for i in range(200):
        centre = 5.0 if i % 2 else -5.0
        coords = [centre + rng.gauss(0, 1) for _ in range(dims)]
        rows.append(([1.0 if i % 2 else -1.0] if labelled else []) + coords)
    path = tmp_path / ("labelled.txt" if labelled else "points.txt")
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in rows))
    return path


DATAFRAME_EXAMPLES = {
    "wordcount": lambda p: [str(_words_file(p))],
    "sort": lambda p: [str(_numbers_file(p))],
    "pagerank": lambda p: [str(_links_file(p)), "4"],
    "logistic_regression": lambda p: [str(_points_file(p, 10, labelled=True)), "3"],
    "kmeans": lambda p: [str(_points_file(p, 3, labelled=False)), "2", "0.0001"],
}


def _run_unchanged(name: str, tmp_path: Path) -> tuple[Path, list[str], str]:
    """Run example *name*, only its imports changed (it reads with spark.read.text(..).rdd); its stdout."""
    script = port(name, tmp_path)
    args = DATAFRAME_EXAMPLES[name](tmp_path)
    result = submit(script, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return script, args, result.stdout


def test_wordcount_runs_unchanged(tmp_path: Path) -> None:
    _, (path,), out = _run_unchanged("wordcount", tmp_path)
    lines = out.splitlines()
    expected = Counter(w for line in Path(path).read_text().splitlines() for w in line.split(" "))
    assert Counter(lines) == Counter(f"{w}: {n}" for w, n in expected.items())


def test_sort_runs_unchanged(tmp_path: Path) -> None:
    _, (path,), out = _run_unchanged("sort", tmp_path)
    lines = out.splitlines()
    expected = sorted(int(x) for line in Path(path).read_text().splitlines() for x in line.split(" "))
    assert lines == [str(x) for x in expected]


def test_pagerank_runs_unchanged(tmp_path: Path) -> None:
    script, (path, iterations), out = _run_unchanged("pagerank", tmp_path)
    lines = out.splitlines()
    parse = helpers(script)["parseNeighbors"]
    links: dict[str, set[str]] = {}
    for line in Path(path).read_text().splitlines():
        src, dst = parse(line)
        links.setdefault(src, set()).add(dst)
    ranks = {url: 1.0 for url in links}
    for _ in range(int(iterations)):
        contribs: dict[str, float] = {}
        for url, rank in ranks.items():
            for dst in links.get(url, ()):  # a url without links of its own gives nothing
                contribs[dst] = contribs.get(dst, 0.0) + rank / len(links[url])
        ranks = {url: c * 0.85 + 0.15 for url, c in contribs.items()}
    got = {}
    for line in lines:
        m = re.fullmatch(r"(\S+) has rank: (\S+)\.", line)
        if m:
            got[m.group(1)] = float(m.group(2))
    assert got.keys() == ranks.keys()
    for url, rank in ranks.items():
        assert got[url] == pytest.approx(rank, rel=1e-9)


def test_logistic_regression_runs_unchanged(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    script, (path, iterations), out = _run_unchanged("logistic_regression", tmp_path)
    assert re.findall(r"^On iteration (\d+)$", out, re.M) == [str(i + 1) for i in range(int(iterations))]

    def vector(label: str) -> Any:  # numpy prints a long vector over several lines
        m = re.search(label + r": \[([^\]]*)\]", out)
        assert m, out
        return np.array([float(x) for x in m.group(1).split()])

    # plain Python: the same gradient steps over all points in one matrix, from the printed start
    data = np.vstack(helpers(script)["readPointBatch"](Path(path).read_text().splitlines()))
    w = vector("Initial w")
    for _ in range(int(iterations)):
        y, x = data[:, 0], data[:, 1:]
        w = w - ((1.0 / (1.0 + np.exp(-y * x.dot(w))) - 1.0) * y * x.T).sum(1)
    np.testing.assert_allclose(vector("Final w"), w, rtol=1e-5, atol=1e-4)  # w printed to 8 digits


def test_kmeans_runs_unchanged(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    _, (path, k, _dist), out = _run_unchanged("kmeans", tmp_path)
    final = out[out.index("Final centers: "):]
    centres = sorted(tuple(float(v) for v in block.replace(",", " ").split())
                     for block in re.findall(r"array\(\[([^\]]*)\]\)", final))
    points = np.array([[float(v) for v in line.split()] for line in Path(path).read_text().splitlines()])
    # two well-apart clusters: Lloyd's iterations end at their means from any two starting points
    expected = sorted(tuple(points[side].mean(axis=0)) for side in (points[:, 0] < 0, points[:, 0] > 0))
    assert len(centres) == int(k)
    for got, want in zip(centres, expected):
        assert got == pytest.approx(want, abs=1e-3)


# ----------------------------------------------------------------------------- against PySpark itself
# transitive_closure's union then distinct doubles its partitions each round unless this is set
PARALLELISM = 4
PYSPARK_RUNNER = """
import contextlib, json, runpy, sys
for name, script, args, out in json.loads(sys.argv[1]):
    sys.argv = [script, *args]
    with open(out, "w") as f, contextlib.redirect_stdout(f):
        runpy.run_path(script, run_name="__main__")
"""


def _run_pyspark(runs: list[tuple[str, Path, list[str]]], tmp_path: Path) -> dict[str, str]:
    """Each (name, unchanged example, args) under real PySpark (local[2], loopback only),
    all in one process so the JVM starts once; each example's stdout."""
    import json
    jobs = [(name, str(script), args, str(tmp_path / f"{name}.pyspark.out")) for name, script, args in runs]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK"))}
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_SUBMIT_ARGS="--master local[2] --conf spark.ui.enabled=false "
               "--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 "
               f"--conf spark.default.parallelism={PARALLELISM} pyspark-shell")
    # its own process group: the JVM PySpark starts goes down with it, even on a timeout
    proc = subprocess.Popen([sys.executable, "-c", PYSPARK_RUNNER, json.dumps(jobs)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
    assert proc.returncode == 0, err[-3000:]
    return {name: Path(out).read_text() for name, _, _, out in jobs}


def _ranks(out: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) has rank: (\S+)\.$", out, re.M)}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sparkctl_prints_what_pyspark_prints(tmp_path: Path) -> None:
    """The deterministic examples, unchanged under PySpark 4.3 and with only their imports
    changed under sparkctl, print the same."""
    import shutil
    if shutil.which("java") is None:
        pytest.skip("PySpark needs Java (Debian's openjdk-17-jre-headless; .ci/run installs it)")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    names = ["wordcount", "sort", "pagerank", "transitive_closure"]
    args = {name: DATAFRAME_EXAMPLES[name](inputs) if name in DATAFRAME_EXAMPLES else ["3"] for name in names}
    pyspark_out = _run_pyspark([(n, EXAMPLES / f"{n}.py", args[n]) for n in names], tmp_path)  # type: ignore[operator]
    ours = {}
    for name in names:
        work = tmp_path / name
        work.mkdir()
        script = port(name, work)
        r = submit(script, *args[name], cwd=work, conf=(f"spark.default.parallelism={PARALLELISM}",))
        assert r.returncode == 0, r.stderr[-3000:]
        ours[name] = r.stdout
    assert Counter(ours["wordcount"].splitlines()) == Counter(pyspark_out["wordcount"].splitlines())
    assert ours["sort"].splitlines() == pyspark_out["sort"].splitlines()
    assert ours["transitive_closure"].split() == pyspark_out["transitive_closure"].split()
    theirs = _ranks(pyspark_out["pagerank"])
    assert theirs and _ranks(ours["pagerank"]).keys() == theirs.keys()
    for url, rank in _ranks(ours["pagerank"]).items():
        assert rank == pytest.approx(theirs[url], rel=1e-9)
