"""Data in an object store: reading, writing and committing through s3a:// URLs against a
real S3-protocol server (moto's, started here on 127.0.0.1 with IAM authentication on),
and files over HTTP from a real HTTP server. Results are checked against plain Python over
the same bytes, and what lands in the store against what boto3 lists there."""
from __future__ import annotations

import gzip
import http.server
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from tests.s3_server import BUCKET, S3Server  # noqa: E402
from tests.clusters import ROOT, CliCluster  # noqa: E402
from sparkctl import SparkConf, SparkContext, SparkFiles, TaskContext  # noqa: E402
from sparkctl.errors import FileSystemError  # noqa: E402

pytestmark = pytest.mark.timeout(180)
S3 = f"s3a://{BUCKET}"


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    srv = S3Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def s3sc(server: S3Server) -> Iterator[SparkContext]:
    conf = SparkConf().setMaster("local[2]").setAppName("object-store").set("spark.ui.enabled", "false")
    for key, value in server.settings().items():
        conf.set(key, value)
    sc = SparkContext(conf=conf)
    try:
        yield sc
    finally:
        sc.stop()


def text(n: int, seed: int = 0) -> str:
    return "".join(f"row {i} {'w%d ' % ((i * 7 + seed) % 13) * (i % 5)}end\n" for i in range(n))


# ---------------------------------------------------------------------------- reading
def test_text_files_directories_globs_and_compressed_objects(s3sc: SparkContext, server: S3Server) -> None:
    a, b, c = text(3000), text(200, 1), text(500, 2)
    server.put("read/a.txt", a.encode())
    server.put("read/b.txt", b.encode())
    server.put("read/c.txt.gz", gzip.compress(c.encode()))
    server.put("read/_SUCCESS", b"")
    server.put("read/.hidden", b"not data\n")
    assert s3sc.textFile(f"{S3}/read/a.txt", 5).collect() == a.splitlines()
    assert sorted(s3sc.textFile(f"{S3}/read").collect()) == sorted((a + b + c).splitlines())
    assert s3sc.textFile(f"{S3}/read/*.txt").count() == len((a + b).splitlines())
    both = s3sc.textFile(f"{S3}/read/b.txt,{S3}/read/c.txt.gz").collect()
    assert both == (b + c).splitlines()
    files = dict(s3sc.wholeTextFiles(f"{S3}/read/*.txt").collect())
    assert files == {f"{S3}/read/a.txt": a, f"{S3}/read/b.txt": b}
    binary = dict(s3sc.binaryFiles(f"{S3}/read/c.txt.gz").collect())
    assert gzip.decompress(binary[f"{S3}/read/c.txt.gz"]) == c.encode()
    with pytest.raises(FileNotFoundError, match=f"{S3}/read/nothing"):
        s3sc.textFile(f"{S3}/read/nothing").count()


def test_an_object_is_read_in_byte_ranges(s3sc: SparkContext, server: S3Server) -> None:
    data = text(40_000)
    server.put("ranges/big.txt", data.encode())
    s3sc._conf.set("spark.hadoop.fs.s3a.block.size", "64k")
    try:
        rdd = s3sc.textFile(f"{S3}/ranges/big.txt")
        assert rdd.getNumPartitions() >= len(data) // 65536
        assert rdd.collect() == data.splitlines()
        records = bytes(range(256)) * 4000
        server.put("ranges/records.bin", records)
        got = s3sc.binaryRecords(f"{S3}/ranges/records.bin", 64).collect()
        assert b"".join(got) == records and {len(r) for r in got} == {64}
    finally:
        s3sc._conf.set("spark.hadoop.fs.s3a.block.size", "16m")


# ---------------------------------------------------------------------------- writing, committing
def test_save_commits_each_partition_once_then_success(s3sc: SparkContext, server: S3Server) -> None:
    rdd = s3sc.parallelize(range(1000), 4).map(lambda x: f"value {x}")
    rdd.saveAsTextFile(f"{S3}/out/plain")
    assert server.keys("out/plain/") == sorted([f"out/plain/part-0000{i}" for i in range(4)] + ["out/plain/_SUCCESS"])
    assert server.get("out/plain/part-00000").decode().splitlines() == [f"value {x}" for x in range(250)]
    assert s3sc.textFile(f"{S3}/out/plain").collect() == [f"value {x}" for x in range(1000)]
    rdd.saveAsTextFile(f"{S3}/out/gz", "org.apache.hadoop.io.compress.GzipCodec")
    assert gzip.decompress(server.get("out/gz/part-00003.gz")).decode().splitlines() == \
        [f"value {x}" for x in range(750, 1000)]
    s3sc.parallelize([("k", i) for i in range(50)], 3).saveAsPickleFile(f"{S3}/out/pickled")
    assert sorted(s3sc.pickleFile(f"{S3}/out/pickled").collect()) == [("k", i) for i in range(50)]
    with pytest.raises(FileExistsError, match=f"{S3}/out/plain already exists"):
        rdd.saveAsTextFile(f"{S3}/out/plain")
    assert not any("_temporary" in k for k in server.keys("out/"))


def test_a_failed_job_leaves_nothing_visible(s3sc: SparkContext, server: S3Server) -> None:
    def half_then_fail(index: int, it: Iterator[int]) -> Iterator[str]:
        for x in it:
            if index == 2 and x % 100 == 50:
                raise ValueError("this partition cannot be written")
            yield str(x)

    rdd = s3sc.parallelize(range(400), 4).mapPartitionsWithIndex(half_then_fail)
    with pytest.raises(ValueError, match="cannot be written"):
        rdd.saveAsTextFile(f"{S3}/out/failed")
    assert server.keys("out/failed") == []


def test_checkpoints_go_to_the_store(s3sc: SparkContext, server: S3Server) -> None:
    s3sc.setCheckpointDir(f"{S3}/checkpoints")
    rdd = s3sc.parallelize(range(100), 3).map(lambda x: x * x)
    rdd.checkpoint()
    assert rdd.sum() == sum(x * x for x in range(100))
    assert rdd.isCheckpointed() and s3sc.getCheckpointDir().startswith(f"{S3}/checkpoints/")
    assert rdd.map(lambda x: x + 1).sum() == sum(x * x + 1 for x in range(100))
    parts = [k for k in server.keys("checkpoints/") if "/part-" in k]
    assert len(parts) == 3


# ---------------------------------------------------------------------------- errors
def _submit(tmp_path: Path, app: str, *args: str, conf: dict[str, str] | None = None,
            master: str = "local[2]", timeout: float = 150) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(app))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        env.pop(key, None)
    confs = [a for k, v in {"spark.ui.showConsoleProgress": "false", **(conf or {})}.items()
             for a in ("--conf", f"{k}={v}")]
    return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", master, *confs,
                           str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


COUNT_APP = """
    import sys
    from sparkctl import SparkContext
    sc = SparkContext.getOrCreate()
    print(sc.textFile(sys.argv[1]).count())
    sc.stop()
"""


def test_bad_credentials_are_one_line_without_the_secret(tmp_path: Path, server: S3Server) -> None:
    server.put("errors/a.txt", b"x\n")
    bad = server.settings(secret="WRONG-secret-0123456789")
    r = _submit(tmp_path, COUNT_APP, f"{S3}/errors/a.txt", conf=bad)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"sparkctl: access to {S3}/errors/a.txt was refused"), lines[0]
    assert "WRONG-secret" not in r.stderr + r.stdout
    unknown = server.settings(key="AKIANOSUCHKEY0000000")
    r = _submit(tmp_path, COUNT_APP, f"{S3}/errors/a.txt", conf=unknown)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "refused" in r.stderr
    good = _submit(tmp_path, COUNT_APP, f"{S3}/errors/a.txt", conf=server.settings())
    assert good.returncode == 0 and good.stdout.strip() == "1", good.stderr


def test_an_unknown_scheme_or_missing_backend_is_one_line(tmp_path: Path) -> None:
    r = _submit(tmp_path, COUNT_APP, "nosuch://bucket/a.txt")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "sparkctl: unknown filesystem scheme 'nosuch': sparkctl reads and writes file, s3, s3a, s3n, gs, gcs, "
        "abfs, abfss, az, wasb, wasbs, hdfs, webhdfs, http, https, memory"]
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        r = _submit(tmp_path, COUNT_APP, "gs://bucket/a.txt")
        assert r.returncode == 1
        assert r.stderr.strip().splitlines() == ["sparkctl: gs:// URLs need the gcs extra: pip install 'sparkctl[gcs]'"]


def test_errors_raised_in_the_driver_are_typed(s3sc: SparkContext) -> None:
    with pytest.raises(FileSystemError, match="unknown filesystem scheme"):
        s3sc.textFile("nosuch://x/y")
    assert isinstance(FileSystemError("x"), OSError)


# ---------------------------------------------------------------------------- credentials stay secret
LOGGED_APP = """
    import sys
    from sparkctl import SparkContext, SparkFiles
    sc = SparkContext.getOrCreate()
    sc.addFile(sys.argv[1])
    print(sc.parallelize(range(4), 2).map(lambda x: open(SparkFiles.get("lookup.txt")).read().strip()).collect())
    print(sc.textFile(sys.argv[2]).count())
    sc.stop()
"""


def test_credentials_never_reach_logs_or_the_event_log(tmp_path: Path, server: S3Server) -> None:
    server.put("files/lookup.txt", b"looked-up\n")
    server.put("logged/in.txt", text(100).encode())
    conf = {**server.settings(), "spark.eventLog.enabled": "true", "spark.eventLog.dir": f"{S3}/spark-events",
            "spark.log.level": "INFO"}
    r = _submit(tmp_path, LOGGED_APP, f"{S3}/files/lookup.txt", f"{S3}/logged/in.txt", conf=conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(["looked-up"] * 4), "100"]
    logs = [k for k in server.keys("spark-events/")]
    assert len(logs) == 1 and not logs[0].endswith(".inprogress"), logs
    events = [line for line in server.get(logs[0]).decode().splitlines()]
    assert '"Event":"SparkListenerApplicationEnd"' in events[-1]
    everything = r.stdout + r.stderr + "\n".join(events)
    for root, _, names in os.walk(tmp_path):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                everything += f.read().decode("utf-8", "replace")
    assert server.secret not in everything
    assert "spark.hadoop.fs.s3a.secret.key" in "\n".join(events) and "*********(redacted)" in "\n".join(events)


# ---------------------------------------------------------------------------- HTTP
class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, with single byte ranges (RFC 9110), as web servers do."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not header or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, _, last = header.removeprefix("bytes=").partition("-")
        start = int(first)
        end = min(int(last) if last else size - 1, size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))


def test_http_files_are_read_in_ranges_and_added(tmp_path: Path, s3sc: SparkContext) -> None:
    pytest.importorskip("aiohttp")
    served = tmp_path / "www"
    served.mkdir()
    data = text(20_000)
    (served / "big.txt").write_text(data)
    (served / "lookup.txt").write_text("from the web\n")
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        rdd = s3sc.textFile(f"{base}/big.txt", 6)
        assert rdd.getNumPartitions() >= 6
        assert rdd.collect() == data.splitlines()
        s3sc.addFile(f"{base}/lookup.txt")
        got = s3sc.parallelize(range(2), 2).map(lambda _: open(SparkFiles.get("lookup.txt")).read()).collect()
        assert got == ["from the web\n"] * 2
        assert f"{base}/lookup.txt" in s3sc.listFiles
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------------------- the samples on a cluster
def _local_and_s3_runs(tmp_path: Path, server: S3Server, cluster: CliCluster, sample: str, local_args: list[str],
                       s3_args: list[str]) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    confs = [a for k, v in {"spark.ui.showConsoleProgress": "false", **server.settings()}.items()
             for a in ("--conf", f"{k}={v}")]
    runs = []
    for args in (local_args, s3_args):
        runs.append(cluster.cli("submit", "--master", cluster.url, *confs, str(ROOT / "sample_jobs" / sample), *args,
                                timeout=150))
    return runs[0], runs[1]


def _lines(parts: list[bytes]) -> list[str]:
    return sorted(line for p in parts for line in p.decode().splitlines())


@pytest.mark.slow
def test_samples_read_and_write_the_store_on_a_two_worker_cluster(tmp_path: Path, server: S3Server) -> None:
    """The issue's check: the word count and join samples, input and output on the S3 server,
    on a two-worker cluster, give what they give with local files; a module added from the
    store with addPyFile imports in the tasks of both workers."""
    words = (ROOT / "sample_jobs" / "data" / "words.txt").read_bytes()
    server.put("samples/words.txt", words)
    (tmp_path / "cluster").mkdir()
    cluster = CliCluster(tmp_path / "cluster")
    try:
        cluster.start([("127.0.0.2", 1), ("127.0.0.3", 1)])
        local, remote = _local_and_s3_runs(
            tmp_path, server, cluster, "wordcount.py",
            [str(ROOT / "sample_jobs" / "data" / "words.txt"), str(tmp_path / "wc-out")],
            [f"{S3}/samples/words.txt", f"{S3}/samples/wc-out"])
        assert remote.stdout.replace(f"{S3}/samples/words.txt", "INPUT").replace(f"{S3}/samples/wc-out", "OUT") == \
            local.stdout.replace(str(ROOT / "sample_jobs" / "data" / "words.txt"), "INPUT").replace(
                str(tmp_path / "wc-out"), "OUT")
        local_parts = [p.read_bytes() for p in sorted((tmp_path / "wc-out").glob("part-*"))]
        remote_keys = server.keys("samples/wc-out/")
        assert "samples/wc-out/_SUCCESS" in remote_keys and len(remote_keys) == len(local_parts) + 1
        assert _lines([server.get(k) for k in remote_keys if "/part-" in k]) == _lines(local_parts)
        expected = Counter(w for line in words.decode().splitlines() for w in __import__("re").findall(
            r"[a-z0-9]+(?:'[a-z]+)?", line.lower()))
        assert {ln.split("\t")[0]: int(ln.split("\t")[1]) for ln in _lines(local_parts)} == dict(expected)

        local, remote = _local_and_s3_runs(
            tmp_path, server, cluster, "join.py",
            ["800", "6000", "--data", str(tmp_path / "shop"), "--output", str(tmp_path / "spend")],
            ["800", "6000", "--data", f"{S3}/samples/shop", "--output", f"{S3}/samples/spend"])
        assert remote.stdout.replace(f"{S3}/samples/spend", "OUT") == local.stdout.replace(str(tmp_path / "spend"),
                                                                                           "OUT")
        assert _lines([server.get(k) for k in server.keys("samples/spend/") if "/part-" in k]) == \
            _lines([p.read_bytes() for p in (tmp_path / "spend").glob("part-*")])
        assert {k.rsplit("/", 2)[1] for k in server.keys("samples/shop/")} == {"customers", "orders"}

        server.put("samples/helper_mod.py", b"def where():\n    import socket\n    return 'helped'\n")
        app = tmp_path / "pyfile_app.py"
        app.write_text(textwrap.dedent(f"""
            from sparkctl import SparkContext
            sc = SparkContext.getOrCreate()
            sc.addPyFile("{S3}/samples/helper_mod.py")
            def use(_):
                import helper_mod
                return helper_mod.where()
            print(sorted(set(sc.parallelize(range(8), 8).map(use).collect())))
            import helper_mod
            print(helper_mod.where())
            sc.stop()
        """))
        confs = [a for k, v in server.settings().items() for a in ("--conf", f"{k}={v}")]
        r = cluster.cli("submit", "--master", cluster.url, *confs, str(app), timeout=120)
        assert r.stdout.split() == ["['helped']", "helped"]
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------- faults while writing
KILLING_WRITER = """
    import os, signal, sys, time
    from sparkctl import SparkContext, TaskContext
    from sparkctl.executor.slot import executor_pid
    sc = SparkContext.getOrCreate()

    def rows(index, it):
        tc = TaskContext.get()
        for n, x in enumerate(it):
            if tc.attemptNumber() == 0 and index in (1, 4) and n == 50:
                # half the part is written: its executor dies now
                os.kill(executor_pid(), signal.SIGKILL)
                time.sleep(30)
            yield f"row {x}"

    sc.parallelize(range(600), 6).mapPartitionsWithIndex(rows).saveAsTextFile(sys.argv[1])
    print("saved")
    sc.stop()
"""


@pytest.mark.slow
def test_killed_executors_mid_write_leave_one_copy_of_each_part(tmp_path: Path, server: S3Server) -> None:
    (tmp_path / "cluster").mkdir()
    cluster = CliCluster(tmp_path / "cluster")
    try:
        cluster.start([("127.0.0.2", 2), ("127.0.0.3", 2)])
        app = tmp_path / "killing.py"
        app.write_text(textwrap.dedent(KILLING_WRITER))
        confs = [a for k, v in {**server.settings(), "spark.ui.showConsoleProgress": "false"}.items()
                 for a in ("--conf", f"{k}={v}")]
        r = cluster.cli("submit", "--master", cluster.url, *confs, str(app), f"{S3}/faults/killed", timeout=150)
        assert r.stdout.strip() == "saved"
        keys = server.keys("faults/killed/")
        assert keys == sorted([f"faults/killed/part-{i:05d}" for i in range(6)] + ["faults/killed/_SUCCESS"])
        got = [line for k in keys if "/part-" in k for line in server.get(k).decode().splitlines()]
        assert got == [f"row {x}" for x in range(600)]
    finally:
        cluster.stop()


SPECULATED_WRITER = """
    import sys, time
    from sparkctl import SparkContext, TaskContext
    from sparkctl.fs import filesystem_for
    sc = SparkContext.getOrCreate()
    marker = sys.argv[2]

    def rows(index, it):
        if index == 0:
            fs = filesystem_for(marker, sc_conf)
            if TaskContext.get().attemptNumber() == 0:
                yield "written by the slow attempt"
                fs.write_bytes(fs.strip(marker), b"")
                time.sleep(20)  # a straggler: a copy of this task runs meanwhile and wins
            else:  # the copy: once the slow attempt is midway through its part
                deadline = time.monotonic() + 20
                while not fs.exists(fs.strip(marker)) and time.monotonic() < deadline:
                    time.sleep(0.05)
        for x in it:
            yield f"row {x}"

    sc_conf = dict(sc.getConf().getAll())
    sc.parallelize(range(300), 3).mapPartitionsWithIndex(rows).saveAsTextFile(sys.argv[1])
    print("saved")
    sc.stop()
"""


def test_a_losing_speculative_attempt_leaves_nothing(tmp_path: Path, server: S3Server) -> None:
    conf = {**server.settings(), "spark.speculation": "true", "spark.speculation.interval": "100ms",
            "spark.speculation.quantile": "0.5", "spark.speculation.multiplier": "1.5"}
    r = _submit(tmp_path, SPECULATED_WRITER, f"{S3}/faults/speculated", f"{S3}/faults/slow-started",
                conf=conf, master="local-cluster[2,2,512]")
    assert r.returncode == 0 and r.stdout.strip() == "saved", r.stderr
    assert "faults/slow-started" in server.keys("faults/")  # the slow attempt did run, and wrote
    keys = server.keys("faults/speculated/")
    assert keys == sorted([f"faults/speculated/part-{i:05d}" for i in range(3)] + ["faults/speculated/_SUCCESS"])
    got = [line for k in keys if "/part-" in k for line in server.get(k).decode().splitlines()]
    assert got == [f"row {x}" for x in range(300)]


# ---------------------------------------------------------------------------- a big object
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_200_mb_object_gives_at_least_8_partitions(s3sc: SparkContext, server: S3Server) -> None:
    line = b"x" * 99 + b"\n"
    server.s3().put_object(Bucket=BUCKET, Key="big/200mb.txt", Body=line * 2_000_000)  # 200,000,000 bytes
    rdd = s3sc.textFile(f"{S3}/big/200mb.txt")
    assert rdd.getNumPartitions() >= 8
    assert rdd.count() == 2_000_000


def test_nothing_unpickles_a_credential_into_a_repr(server: S3Server) -> None:
    from sparkctl.fs import filesystem_for
    fs = filesystem_for(f"{S3}/x", server.settings())
    assert server.secret not in repr(fs) and server.secret not in str(pickle.loads(pickle.dumps(fs)).__repr__())
