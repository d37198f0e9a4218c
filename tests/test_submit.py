"""`sparkctl submit`: argument handling through click's runner, and real driver runs as
subprocesses (a failing task's remote traceback, retries, exit codes, settings reaching
SparkContext())."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparkctl.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def run_submit(args: list[str], cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 90) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.setdefault("SPARKCTL_CONF_DIR", str(cwd))  # no conf file: defaults
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def write_app(tmp_path: Path, body: str, name: str = "app.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("args, message", [
    (["--master", "yarn", "x.py"], "--master: spark.master must be a master URL"),
    (["--bogus", "x.py"], "No such option"),
    (["missing.py"], "missing.py does not exist"),
    (["--executor-memory", "12x", "x.py"], "invalid --executor-memory '12x'"),
    (["--total-executor-cores", "0", "x.py"], "--total-executor-cores must be at least 1"),
    (["--conf", "novalue", "x.py"], "--conf expects KEY=VALUE"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.py").write_text("print('hi')\n")
    os.chdir(tmp_path)
    result = CliRunner().invoke(main, ["submit", *args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_app_that_is_not_python(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "broken.py").write_text("def f(:\n")
    os.chdir(tmp_path)
    r1 = CliRunner().invoke(main, ["submit", "notes.txt"])
    r2 = CliRunner().invoke(main, ["submit", "broken.py"])
    assert r1.exit_code == 2 and "not a Python file" in r1.output
    assert r2.exit_code == 2 and "not valid Python" in r2.output and "line 1" in r2.output


def test_submit_runs_app_with_settings_and_args(tmp_path: Path) -> None:
    app = write_app(tmp_path, """
        import sys
        from sparkctl import SparkContext
        sc = SparkContext.getOrCreate()
        conf = sc.getConf()
        print("master", sc.master)
        print("name", sc.appName)
        print("conf", conf.get("spark.task.maxFailures"))
        print("args", sys.argv[1:])
        print("sum", sc.parallelize(range(101), 3).sum())
        sc.stop()
    """)
    r = run_submit(["--master", "local[2]", "--name", "my-app", "--conf", "spark.task.maxFailures=2",
                    str(app), "one", "--two"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "master local[2]" in out and "name my-app" in out and "conf 2" in out
    assert "args ['one', '--two']" in out and "sum 5050" in out


def test_master_from_config_file(tmp_path: Path) -> None:
    (tmp_path / "sparkctl-defaults.conf").write_text("# comment\nspark.master local[1]\nspark.app.name from-file\n")
    app = write_app(tmp_path, """
        from sparkctl import SparkContext
        with SparkContext() as sc:
            print(sc.master, sc.appName, sc.defaultParallelism)
    """)
    r = run_submit([str(app)], tmp_path, env={"SPARKCTL_CONF_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["local[1]", "from-file", "1"]


def test_config_file_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "sparkctl-defaults.conf").write_text("spark.master local[1]\nspark.app.name\n")
    app = write_app(tmp_path, "print(1)\n")
    r = run_submit([str(app)], tmp_path, env={"SPARKCTL_CONF_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert f"{tmp_path / 'sparkctl-defaults.conf'}:2" in r.stderr and "Traceback" not in r.stderr


def test_failing_task_reaches_user_with_remote_traceback(tmp_path: Path) -> None:
    app = write_app(tmp_path, """
        from sparkctl import SparkContext

        class RecordError(Exception):
            pass

        def check(x):
            if x == 7:
                raise RecordError(f"record {x} is bad")
            return x

        sc = SparkContext.getOrCreate()
        try:
            sc.parallelize(range(10), 2).map(check).collect()
        except RecordError as e:
            print("caught", type(e).__name__, e)
            print("cause", type(e.__cause__).__name__)
            print("remote-frame", "in check" in str(e.__cause__))
            print("notes", "failed 3 times" in "".join(getattr(e, "__notes__", [])))
        sc.parallelize(range(3)).map(check).count()
        sc.parallelize(range(10), 2).map(check).count()
    """)
    r = run_submit(["--master", "local[2]", "--conf", "spark.task.maxFailures=3", str(app)], tmp_path)
    assert r.returncode == 1
    assert "caught RecordError record 7 is bad" in r.stdout
    assert "cause RemoteTraceback" in r.stdout and "remote-frame True" in r.stdout and "notes True" in r.stdout
    # the uncaught failure ends the driver with the task's own traceback
    assert 'line 9, in check' in r.stderr and "RecordError: record 7 is bad" in r.stderr


def test_flaky_task_succeeds_on_retry(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    app = write_app(tmp_path, f"""
        import os
        from sparkctl import SparkContext, TaskContext

        def flaky(x):
            if x == 3 and not os.path.exists({str(marker)!r}):
                open({str(marker)!r}, "w").close()
                raise RuntimeError("transient")
            return (x, TaskContext.get().attemptNumber())

        sc = SparkContext.getOrCreate()
        print(dict(sc.parallelize(range(6), 3).map(flaky).collect()))
        sc.stop()
    """)
    r = run_submit(["--master", "local[2]", str(app)], tmp_path)
    assert r.returncode == 0, r.stderr
    attempts = eval(r.stdout.strip().splitlines()[-1])
    assert sorted(attempts) == list(range(6))
    assert attempts[3] == 1 and attempts[0] == 0  # only the failed partition ran again


def test_app_exit_code_is_passed_through(tmp_path: Path) -> None:
    app = write_app(tmp_path, """
        import sys
        from sparkctl import SparkContext
        sc = SparkContext.getOrCreate()
        sc.parallelize([1]).count()
        sys.exit(3)
    """)
    r = run_submit(["--master", "local[1]", str(app)], tmp_path)
    assert r.returncode == 3


def test_py_files_reach_the_executors(tmp_path: Path) -> None:
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "helpers_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    app = write_app(tmp_path, """
        from sparkctl import SparkContext
        import helpers_mod
        sc = SparkContext.getOrCreate()
        print(sc.parallelize(range(4), 2).map(helpers_mod.triple).collect())
        sc.stop()
    """)
    r = run_submit(["--master", "local[2]", "--py-files", str(libdir / "helpers_mod.py"), str(app)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0, 3, 6, 9]"


def test_unreachable_master_is_one_line(tmp_path: Path) -> None:
    app = write_app(tmp_path, "print('never runs')\n")
    r = run_submit(["--master", "spark://127.0.0.1:1", str(app)], tmp_path, env={"SPARKCTL_SECRET": "s"})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "cannot reach the master at spark://127.0.0.1:1" in r.stderr
    assert "never runs" not in r.stdout
