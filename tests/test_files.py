"""Files for tasks: addFile / addArchive / addPyFile, SparkFiles, listFiles / listArchives,
spark.files / spark.archives and submit --files / --archives.

The reference is PySpark's behaviour: a file read in a task through ``SparkFiles.get``
holds what the driver's copy holds; a directory needs ``recursive=True``; an archive is
unpacked into a directory named after it (or after its ``#alias``); adding a path again
does nothing, adding another file of the same name and other contents is refused; a
module added with addPyFile after the context started imports in tasks and on the driver.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sparkctl import SparkConf, SparkContext
from sparkctl.cli import main
from sparkctl.errors import SparkctlError
from sparkctl.files import FileConflictError, SparkFiles
from tests.clusters import wait_for
from tests.conftest import stop_shared_context

ROOT = Path(__file__).resolve().parent.parent


def unique(stem: str) -> str:
    """A name no other test added to the shared context (its files live as long as it does)."""
    return f"{stem}_{uuid.uuid4().hex[:10]}"


def uri(path: Path | str) -> str:
    return "file:" + os.path.realpath(path)


def read_in_tasks(sc: SparkContext, name: str, n: int = 4) -> list[bytes]:
    def read(_: Any) -> list[bytes]:
        with open(SparkFiles.get(name), "rb") as f:
            return [f.read()]
    return sc.parallelize(range(n), n).mapPartitions(read).collect()


def tree_walker() -> Any:
    """A function that maps every path under a root, relative, to a file's bytes (None for
    a directory); made in a function so tasks get it by value, not by importing this module."""
    def tree(root: str) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for d, dirs, files in os.walk(root):
            for x in dirs:
                found[os.path.relpath(os.path.join(d, x), root)] = None
            for x in files:
                with open(os.path.join(d, x), "rb") as f:
                    found[os.path.relpath(os.path.join(d, x), root)] = f.read()
        return found
    return tree


tree = tree_walker()


def tree_in_tasks(sc: SparkContext, name: str, n: int = 2) -> list[dict[str, bytes | None]]:
    walk = tree_walker()
    return sc.parallelize(range(n), n).mapPartitions(lambda _: [walk(SparkFiles.get(name))]).collect()


# ---------------------------------------------------------------- local[2] (the shared context)
@pytest.mark.timeout(60)
def test_added_file_reads_the_same_in_tasks_and_on_the_driver(sc: SparkContext, tmp_path: Path) -> None:
    name = unique("data") + ".bin"
    content = os.urandom(300_000) + b"end"
    (tmp_path / name).write_bytes(content)
    sc.addFile(str(tmp_path / name))
    assert uri(tmp_path / name) in sc.listFiles
    with open(SparkFiles.get(name), "rb") as f:
        assert f.read() == content  # the driver's own copy
    assert SparkFiles.get(name) == os.path.join(SparkFiles.getRootDirectory(), name)
    (tmp_path / name).write_bytes(b"changed later")  # what was added is a copy
    assert read_in_tasks(sc, name) == [content] * 4
    roots = sc.parallelize(range(2), 2).map(lambda _: SparkFiles.getRootDirectory()).collect()
    assert all(r != SparkFiles.getRootDirectory() and os.path.basename(r) == "files" for r in roots)


@pytest.mark.timeout(60)
def test_same_path_twice_is_ignored_same_name_other_contents_refused(sc: SparkContext, tmp_path: Path) -> None:
    name = unique("twice") + ".txt"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    (tmp_path / "a" / name).write_text("first")
    (tmp_path / "b" / name).write_text("first")
    (tmp_path / "c" / name).write_text("second")
    sc.addFile(str(tmp_path / "a" / name))
    sc.addFile("file:" + str(tmp_path / "a" / name))  # the same path again: nothing happens
    assert sc.listFiles.count(uri(tmp_path / "a" / name)) == 1
    sc.addFile(str(tmp_path / "b" / name))  # another path, same contents: accepted
    with pytest.raises(FileConflictError, match=f"{name} exists and does not match contents"):
        sc.addFile(str(tmp_path / "c" / name))
    assert uri(tmp_path / "c" / name) not in sc.listFiles
    assert read_in_tasks(sc, name, 2) == [b"first", b"first"]


@pytest.mark.timeout(60)
def test_missing_paths_and_directories_without_recursive_are_clear_errors(sc: SparkContext,
                                                                          tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"File .*nope\.txt does not exist"):
        sc.addFile(str(tmp_path / "nope.txt"))
    with pytest.raises(FileNotFoundError, match=r"nope\.py does not exist"):
        sc.addPyFile(str(tmp_path / "nope.py"))
    with pytest.raises(FileNotFoundError, match=r"Archive .*nope\.zip does not exist"):
        sc.addArchive(str(tmp_path / "nope.zip"))
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match="is a directory and recursive is not turned on"):
        sc.addFile(str(tmp_path / "adir"))
    (tmp_path / "notes.rar").write_bytes(b"x")
    with pytest.raises(ValueError, match="cannot unpack .*notes.rar"):
        sc.addArchive(str(tmp_path / "notes.rar"))
    with pytest.raises(OSError, match="x.txt"):  # a URL nothing answers (URLs are tested in test_object_store)
        sc.addFile("http://127.0.0.1:1/x.txt")
    assert sc.parallelize(range(4), 2).sum() == 6  # the context is unharmed


@pytest.mark.timeout(60)
def test_directory_added_recursively(sc: SparkContext, tmp_path: Path) -> None:
    name = unique("conf_tree")
    top = tmp_path / name
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "empty").mkdir()
    (top / "a.txt").write_text("A")
    (top / "sub" / "b.txt").write_text("B")
    (top / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)))
    sc.addFile(str(top), recursive=True)
    assert uri(top) + "/" in sc.listFiles
    expected = tree(str(top))
    assert tree(SparkFiles.get(name)) == expected
    assert tree_in_tasks(sc, name) == [expected, expected]


def make_archives(base: Path, stem: str) -> tuple[dict[str, bytes | None], dict[str, Path]]:
    src = base / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "pkg" / "inner.txt").write_text("inner")
    expected = tree(str(src))
    paths = {}
    z = base / f"{stem}.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.write(src / "top.txt", "top.txt")
        f.write(src / "pkg", "pkg")
        f.write(src / "pkg" / "inner.txt", "pkg/inner.txt")
    paths["zip"] = z
    for suffix, mode in ((".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w")):
        p = base / f"{stem}{suffix}"
        with tarfile.open(p, mode) as t:
            t.add(src / "top.txt", "top.txt")
            t.add(src / "pkg", "pkg")
        paths[suffix] = p
    return expected, paths


@pytest.mark.timeout(60)
def test_archives_are_unpacked_into_a_directory_named_after_them(sc: SparkContext, tmp_path: Path) -> None:
    stem = unique("bundle")
    expected, paths = make_archives(tmp_path, stem)
    for p in paths.values():
        sc.addArchive(str(p))
    alias = unique("env")
    sc.addArchive(f"{paths['zip']}#{alias}")
    names = [p.name for p in paths.values()] + [alias]
    for name in names:
        assert tree(SparkFiles.get(name)) == expected, name
        assert tree_in_tasks(sc, name) == [expected, expected], name
    listed = sc.listArchives
    assert f"{uri(paths['zip'])}#{alias}" in listed
    assert all(uri(p) in listed for p in paths.values())
    assert not any(stem in f for f in sc.listFiles)


@pytest.mark.timeout(60)
def test_add_py_file_after_start_imports_in_tasks_and_on_the_driver(sc: SparkContext, tmp_path: Path) -> None:
    assert sc.parallelize(range(4), 2).count() == 4  # the executor and its slots are running
    mod = unique("late_mod")
    (tmp_path / f"{mod}.py").write_text("def twice(x):\n    return 2 * x\n")
    pkg = unique("late_pkg")
    with zipfile.ZipFile(tmp_path / f"{pkg}.zip", "w") as z:
        z.writestr(f"{pkg}/__init__.py", "OFFSET = 1000\n")

    def use(x: int) -> int:
        return importlib.import_module(mod).twice(x) + importlib.import_module(pkg).OFFSET

    with pytest.raises(Exception, match="No module named"):
        sc.parallelize([1], 1).map(use).collect()
    sc.addPyFile(str(tmp_path / f"{mod}.py"))
    sc.addFile(str(tmp_path / f"{pkg}.zip"))  # shipped, not yet on the import path
    sc.addPyFile(str(tmp_path / f"{pkg}.zip"))
    assert sorted(sc.parallelize(range(6), 3).map(use).collect()) == [1000 + 2 * x for x in range(6)]
    assert use(5) == 1010  # and on the driver
    assert importlib.import_module(mod).__file__ == SparkFiles.get(f"{mod}.py")


@pytest.mark.timeout(30)
def test_executor_refuses_names_out_of_order_chunks_and_archives_that_escape(tmp_path: Path) -> None:
    from sparkctl.errors import ProtocolError
    from sparkctl.executor.files import ExecutorFiles
    from sparkctl.scheduler.messages import PutFile
    files = ExecutorFiles(str(tmp_path / "local"))
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ProtocolError):
            files.receive(PutFile(bad, "file", 0, b"x", True))
    with pytest.raises(ProtocolError):
        files.receive(PutFile("y", "exe", 0, b"x", True))
    assert files.receive(PutFile("f", "file", 0, b"ab", False)) is None
    with pytest.raises(ProtocolError, match="offset 5, expected 2"):
        files.receive(PutFile("f", "file", 5, b"cd", True))
    assert files.receive(PutFile("f", "file", 0, b"ab", False)) is None
    assert files.receive(PutFile("f", "file", 2, b"cd", True)) == []
    assert (tmp_path / "local" / "files" / "f").read_bytes() == b"abcd"
    assert files.receive(PutFile("m.zip", "file", 0, b"zip", True, python=True)) == [
        str(tmp_path / "local" / "files" / "m.zip")]
    evil = tmp_path / "evil.tar"
    (tmp_path / "payload").write_text("x")
    with tarfile.open(evil, "w") as t:
        t.add(tmp_path / "payload", "../../escaped")
    with pytest.raises(tarfile.TarError):
        files.receive(PutFile("evil.tar", "tar", 0, evil.read_bytes(), True))
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "local" / "escaped").exists()
    assert not (tmp_path / "local" / "files" / "evil.tar").exists()


@pytest.mark.timeout(30)
def test_spark_files_is_not_constructed_and_needs_a_context() -> None:
    with pytest.raises(NotImplementedError):
        SparkFiles()


# ---------------------------------------------------------------- own contexts
@pytest.fixture
def no_shared_context() -> None:
    """One SparkContext per process: the shared one stops (a later user starts it again)."""
    stop_shared_context()


@pytest.mark.timeout(90)
def test_spark_files_settings_and_an_executor_that_registers_later(tmp_path: Path, no_shared_context: None) -> None:
    (tmp_path / "f.txt").write_text("from spark.files")
    _, archives = make_archives(tmp_path, "conf_bundle")
    conf = (SparkConf().set("spark.files", str(tmp_path / "f.txt"))
            .set("spark.archives", f"{archives['.tgz']}#unpacked"))
    with SparkContext("local[1]", "files-settings", conf=conf) as sc:
        assert sc.listFiles == [uri(tmp_path / "f.txt")]
        assert sc.listArchives == [f"{uri(archives['.tgz'])}#unpacked"]
        sc.addFile(str(tmp_path / "f.txt"))  # already there: ignored
        (tmp_path / "late.txt").write_text("added while running")
        sc.addFile(str(tmp_path / "late.txt"))
        assert read_in_tasks(sc, "f.txt", 1) == [b"from spark.files"]
        runtime = sc._runtime
        assert runtime is not None
        (old,) = runtime.executors.values()
        os.kill(old.pid, signal.SIGKILL)
        wait_for(lambda: runtime.executors and old.executor_id not in runtime.executors, what="a new executor")
        # the new executor was sent every file added so far when it registered
        assert read_in_tasks(sc, "late.txt", 1) == [b"added while running"]
        assert read_in_tasks(sc, "f.txt", 1) == [b"from spark.files"]
        assert sc.parallelize([0], 1).map(lambda _: open(SparkFiles.get("unpacked/top.txt")).read()).collect() \
            == ["top"]
        root = SparkFiles.getRootDirectory()
        assert root in sys.path
    assert not os.path.exists(root) and root not in sys.path
    with pytest.raises(SparkctlError, match="no SparkContext"):
        SparkFiles.getRootDirectory()


@pytest.mark.timeout(30)
def test_a_missing_spark_files_entry_fails_the_start(tmp_path: Path, no_shared_context: None) -> None:
    from sparkctl.errors import ConfigError
    conf = SparkConf().set("spark.files", str(tmp_path / "gone.txt"))
    with pytest.raises(ConfigError, match=r"spark.files: cannot add .*gone.txt: File .* does not exist"):
        SparkContext("local[1]", "files-missing", conf=conf)
    assert SparkContext._active is None


@pytest.mark.timeout(120)
def test_files_and_py_files_on_a_two_worker_cluster(tmp_path: Path, no_shared_context: None) -> None:
    import hashlib
    early = os.urandom(50_000)
    (tmp_path / "early.bin").write_bytes(early)
    # a 1 MiB frame limit: files go in 256 KiB chunks, so this one takes several
    late = os.urandom(1_300_000)
    (tmp_path / "late.bin").write_bytes(late)
    late_digest = hashlib.sha256(late).hexdigest()  # the bytes themselves would not fit a frame
    (tmp_path / "cluster_late_mod.py").write_text("def square(x):\n    return x * x\n")
    conf = SparkConf().set("spark.rpc.message.maxSize", "1")
    with SparkContext("local-cluster[2,1,512]", "files-cluster", conf=conf) as sc:
        sc.addFile(str(tmp_path / "early.bin"))
        assert read_in_tasks(sc, "early.bin", 8) == [early] * 8
        # added while both executors run: there before the next task, on both workers
        sc.addFile(str(tmp_path / "late.bin"))
        sc.addPyFile(str(tmp_path / "cluster_late_mod.py"))

        def probe(x: int) -> tuple[str, bool, int]:
            import cluster_late_mod
            with open(SparkFiles.get("late.bin"), "rb") as f:
                same = hashlib.sha256(f.read()).hexdigest() == late_digest
            return SparkFiles.getRootDirectory(), same, cluster_late_mod.square(x)

        out = sc.parallelize(range(8), 8).map(probe).collect()
        assert [sq for _, _, sq in out] == [x * x for x in range(8)]
        assert all(same for _, same, _ in out)
        assert len({root for root, _, _ in out}) == 2  # both executors ran tasks
        import cluster_late_mod
        assert cluster_late_mod.square(7) == 49


# ---------------------------------------------------------------- sparkctl submit
@pytest.mark.timeout(120)
def test_submit_files_and_archives(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("alpha beta\n")
    _, archives = make_archives(tmp_path, "deps")
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        from sparkctl import SparkContext
        from sparkctl.files import SparkFiles
        sc = SparkContext.getOrCreate()
        def read(_):
            with open(SparkFiles.get("words.txt")) as f, open(SparkFiles.get("env/pkg/inner.txt")) as g:
                return f.read().split() + [g.read()]
        print(sc.parallelize([0], 1).flatMap(read).collect())
        sc.stop()
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", "local[1]",
                        "--files", "words.txt", "--archives", f"{archives['zip'].name}#env", str(app)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['alpha', 'beta', 'inner']"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flag", ["--files", "--archives"])
def test_submit_missing_file_is_one_line(tmp_path: Path, flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.py").write_text("print('never runs')\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["submit", "--master", "local[1]", flag, "gone.zip#x", "x.py"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{flag}: gone.zip does not exist" in lines[0], result.output
