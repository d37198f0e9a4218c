"""Settings are checked where they are read: a bad value or line is one line on stderr and
exit 2 from ``sparkctl submit``, the daemons' start commands and ``status``, naming the key,
the value, where it came from (``file:line``, ``--conf``, ``SPARKCTL_MASTER``,
``SparkConf.set``) and what is expected; a program that builds its own SparkContext gets a
:class:`ConfigError` with the same message. Unit tests of the value types come first, then
real ``bin/sparkctl`` processes."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparkctl.conf import (DEFAULTS, Bool, Choice, Duration, Float, Int, MasterURL, Size, SparkConf,
                           check_setting, decode_submitted, encode_submitted, read_conf_file, warn_unknown)
from sparkctl.context import SparkContext, parse_local_master, validate_master
from sparkctl.errors import ConfigError
from tests.clusters import ROOT, child_env, processes_left

pytestmark = pytest.mark.timeout(60)

# (key, bad value, words of what is expected): the values of the reported problem and a few more
BAD_VALUES = [
    ("spark.executor.memory", "lots", "a size"),
    ("spark.executor.memory", "-1g", "a size of at least 1m"),
    ("spark.task.maxFailures", "abc", "a whole number of at least 1"),
    ("spark.speculation", "maybe", "true or false"),
    ("spark.network.timeout", "soon", "a duration"),
    ("spark.memory.fraction", "1.5", "a number above 0 and at most 1"),
    ("spark.master", "local-cluster[0,1,512]", "a master URL"),
    ("spark.driver.port", "70000", "a whole number from 0 to 65535"),
    ("spark.log.level", "loud", "one of"),
]


# ---------------------------------------------------------------- value types
@pytest.mark.parametrize("kind, good, bad", [
    (Int(1), [("1", 1), (" 42 ", 42), ("+7", 7)], ["0", "-3", "abc", "1.5", "1_000", ""]),
    (Int(0, 65535), [("0", 0), ("65535", 65535)], ["65536", "-1"]),
    (Float(0.0, 1.0), [("0", 0.0), ("0.25", 0.25), (".5", 0.5), ("1", 1.0)], ["1.01", "-0.1", "nan", "inf", "x"]),
    (Float(0.0, 1.0, low_open=True), [("1", 1.0)], ["0", "0.0"]),
    (Bool(), [("true", True), ("FALSE", False), ("yes", True), ("off", False), ("1", True)], ["maybe", "", "2"]),
    (Size("m", 1 << 20), [("512", 512 << 20), ("4g", 4 << 30), ("1.5g", 3 << 29), ("2048k", 2 << 20)],
     ["lots", "-1g", "0", "512k", "4x", "g"]),
    (Size("b"), [("0", 0), ("1024", 1024), ("1kb", 1024)], ["-1", "1 k b"]),
    (Duration(), [("10s", 10.0), ("100ms", 0.1), ("2min", 120.0), ("1h", 3600.0), ("60", 60.0)],
     ["soon", "0", "0s", "-5s", "10 parsecs"]),
    (Duration(positive=False), [("0", 0.0)], ["-1"]),
    (Choice(("NONE", "FILESYSTEM")), [("none", "NONE"), ("FileSystem", "FILESYSTEM")], ["ZOOKEEPER", ""]),
    (MasterURL(), [("local", "local"), ("local[*]", "local[*]"), ("local[2,3]", "local[2,3]"),
                   ("local-cluster[2,1,512]", "local-cluster[2,1,512]"), ("spark://h:7077", "spark://h:7077"),
                   ("spark://a:1,b:2", "spark://a:1,b:2")],
     ["yarn", "local[0]", "local[2,0]", "local-cluster[0,1,512]", "local-cluster[1,0,512]",
      "local-cluster[1,1,0]", "spark://h", "spark://h:0", "spark://h:70000", "spark://:7077"]),
])
def test_value_types(kind, good, bad) -> None:
    for text, value in good:
        assert kind.parse(text) == value, text
    for text in bad:
        with pytest.raises(ValueError):
            kind.parse(text)


@pytest.mark.parametrize("key, value, expected", BAD_VALUES)
def test_a_bad_value_names_source_key_value_and_what_is_expected(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_setting(key, value, "--conf")
    message = str(e.value)
    assert message.startswith(f"--conf: {key} must be ") and message.endswith(f", not {value!r}"), message
    assert expected in message and "\n" not in message
    assert (e.value.key, e.value.value, e.value.source) == (key, value, "--conf")


def test_every_default_is_valid_for_its_own_type() -> None:
    for setting in DEFAULTS.values():
        if setting.default is not None:
            check_setting(setting.key, setting.default, "default")


def test_unknown_keys_pass_but_never_with_a_nul() -> None:
    assert check_setting("app.my.option", "anything at all", "--conf") == "anything at all"
    with pytest.raises(ConfigError, match=r"--conf: app.x must not contain a NUL character, not 'a\\x00b'"):
        check_setting("app.x", "a\x00b", "--conf")


def test_master_urls() -> None:
    assert parse_local_master("local[3,2]") == (3, 2)
    assert parse_local_master("spark://h:1") is None
    with pytest.raises(ConfigError, match=r"invalid master URL 'local-cluster\[0,1,512\]'"):
        validate_master("local-cluster[0,1,512]")
    with pytest.raises(ConfigError, match=r"^SPARKCTL_MASTER: spark.master must be a master URL.*not 'yarn'$"):
        validate_master("yarn", "SPARKCTL_MASTER")


# ---------------------------------------------------------------- the settings file
def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_file_values_keep_their_line(tmp_path: Path) -> None:
    f = write(tmp_path / "d.conf", "# comment\n\nspark.master local[1]\nspark.app.name = my app \r\n"
                                   "spark.executorEnv.FOO bar\n")
    values = read_conf_file(str(f))
    assert values == {"spark.master": "local[1]", "spark.app.name": "my app", "spark.executorEnv.FOO": "bar"}
    assert values.sources["spark.app.name"] == f"{f}:4" and values.unknown == []


@pytest.mark.parametrize("text, needle", [
    ("spark.master local[1]\nspark.executor.memory lots\n", "spark.executor.memory must be a size"),
    ("spark.master local[1]\nspark.executor.memory -1g\n", "'-1g'"),
    ("spark.master local[1]\nthis is not a setting at all !!!\n", "'this is not a setting at all !!!' is not a setting"),
    ("spark.master local[1]\nspark.app.name\n", "expected 'key value'"),
    ("spark.master local[1]\nspark.ui.killEnabled soon maybe\n", "spark.ui.killEnabled must be true or false"),
])
def test_a_bad_line_names_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    f = write(tmp_path / "d.conf", text)
    with pytest.raises(ConfigError) as e:
        read_conf_file(str(f))
    assert str(e.value).startswith(f"{f}:2: ") and needle in str(e.value), str(e.value)


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    f = write(tmp_path / "d.conf", b"\xef\xbb\xbfspark.master local[1]\r\nspark.app.name x\r\n")
    assert read_conf_file(str(f)) == {"spark.master": "local[1]", "spark.app.name": "x"}


def test_text_that_is_not_utf8_names_line_and_offset(tmp_path: Path) -> None:
    f = write(tmp_path / "d.conf", b"spark.master local[1]\nspark.app.name caf\xe9\n")
    with pytest.raises(ConfigError, match=r":2: not UTF-8 text: byte 0xe9 at column 19 \(offset 40 in the file\)"):
        read_conf_file(str(f))


def test_a_nul_in_a_value_names_the_key(tmp_path: Path) -> None:
    f = write(tmp_path / "d.conf", b"spark.app.name a\x00b\n")
    with pytest.raises(ConfigError, match=r":1: spark.app.name must not contain a NUL character"):
        read_conf_file(str(f))


def test_unknown_dotted_keys_are_kept_with_one_warning_each(tmp_path: Path) -> None:
    f = write(tmp_path / "d.conf", "spark.executor.memroy 2g\nmy.app.option 3\n")
    values = read_conf_file(str(f))
    assert values["spark.executor.memroy"] == "2g" and values.unknown == ["spark.executor.memroy", "my.app.option"]
    out = io.StringIO()
    warn_unknown(values, out)
    warn_unknown(values, out)  # once per process
    lines = out.getvalue().splitlines()
    assert lines == [f"sparkctl: warning: {f}:1: spark.executor.memroy is not a sparkctl setting (kept for the "
                     "application)",
                     f"sparkctl: warning: {f}:2: my.app.option is not a sparkctl setting (kept for the application)"]


# ---------------------------------------------------------------- SparkConf
def test_typed_accessors_name_where_the_value_came_from() -> None:
    conf = SparkConf(loadDefaults=False).set("spark.executor.memory", "lots")
    conf.set("spark.task.maxFailures", "abc").set("spark.speculation", "maybe").set("spark.network.timeout", "soon")
    for read, key in ((conf.get_size, "spark.executor.memory"), (conf.get_int, "spark.task.maxFailures"),
                      (conf.get_bool, "spark.speculation"), (conf.get_duration, "spark.network.timeout")):
        with pytest.raises(ConfigError, match=rf"^SparkConf.set: {key} must be .*, not '{conf.get(key)}'$"):
            read(key)
    with pytest.raises(ConfigError, match=r"^SparkConf.setMaster: spark.master must be"):
        SparkConf(loadDefaults=False).set("spark.app.name", "ok").setMaster("yarn").validate()
    good = SparkConf(loadDefaults=False).set("spark.executor.memory", "512").set("spark.network.timeout", "100ms")
    assert good.get_size("spark.executor.memory") == 512 << 20  # the setting's own unit
    assert good.get_duration("spark.network.timeout") == pytest.approx(0.1)
    assert good.get_int("spark.task.maxFailures") == 4 and good.get_bool("spark.speculation") is False


def test_sources_travel_to_the_driver_submit_starts() -> None:
    text = encode_submitted({"spark.master": "local[1]", "a.b": "x"}, {"spark.master": "/c/d.conf:3"})
    assert decode_submitted(text) == [("spark.master", "local[1]", "/c/d.conf:3"), ("a.b", "x", "sparkctl submit")]


def test_a_directory_that_cannot_be_created_gives_the_reason(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    conf = SparkConf(loadDefaults=False).set("spark.local.dir", str(tmp_path / "file" / "sub"))
    # the system's reason: a file is in the way
    with pytest.raises(ConfigError, match=r"^SparkConf.set: spark.local.dir='.*/file/sub': cannot create the "
                                          r"directory: (Not a directory|File exists)$"):
        conf.get_dir("spark.local.dir")
    assert SparkConf(loadDefaults=False).set("spark.local.dir", str(tmp_path / "a" / "b")).get_dir(
        "spark.local.dir") == str(tmp_path / "a" / "b")


def test_sparkcontext_refuses_a_bad_setting_before_starting_anything() -> None:
    conf = SparkConf(loadDefaults=False).setMaster("local[1]").set("spark.executor.memory", "-1g")
    with pytest.raises(ConfigError, match=r"^SparkConf.set: spark.executor.memory must be .*, not '-1g'$"):
        SparkContext(conf=conf)
    with pytest.raises(ConfigError, match=r"^SparkContext\(master=\.\.\.\): spark.master must be"):
        SparkContext("local-cluster[0,1,512]", "x", conf=SparkConf(loadDefaults=False))
    assert SparkContext._active is None


def test_the_master_reads_its_settings_through_the_same_types(tmp_path: Path) -> None:
    from sparkctl.deploy.master import read_settings

    f = write(tmp_path / "d.conf", "spark.worker.timeout 2s\nspark.deploy.maxExecutorRetries -1\n")
    settings = read_settings(read_conf_file(str(f)))
    assert (settings.worker_timeout, settings.max_executor_retries, settings.spread_out) == (2.0, -1, True)
    with pytest.raises(ConfigError, match=r"^settings: spark.deploy.maxExecutorRetries must be a whole number, "
                                          r"not 'abc'$"):
        read_settings({"spark.deploy.maxExecutorRetries": "abc"})


# ---------------------------------------------------------------- the command line, as real processes
APP = """\
from sparkctl import SparkContext
sc = SparkContext.getOrCreate()
print("sum", sc.parallelize(range(10), 2).sum())
sc.stop()
"""


def sparkctl(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 45) -> subprocess.CompletedProcess[str]:
    full_env = child_env(tmp_path / "conf")
    full_env.update(SPARKCTL_PID_DIR=str(tmp_path / "pids"), SPARKCTL_LOG_DIR=str(tmp_path / "logs"),
                    SPARKCTL_WORK_DIR=str(tmp_path / "work"))
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), *args], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def defaults(site: Path, data: bytes | str) -> Path:
    return write(site / "conf" / "sparkctl-defaults.conf", data)


def one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert lines[0].startswith("sparkctl: ") and "Traceback" not in r.stderr + r.stdout, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("key, value, expected", BAD_VALUES + [("spark.local.dir", "/proc/nope", "cannot create")])
def test_submit_conf(site: Path, key: str, value: str, expected: str) -> None:
    r = sparkctl(site, "submit", "--master", "local[1]", "--conf", f"{key}={value}", "app.py")
    if key == "spark.master":  # --master outranks --conf; alone, the --conf value is the one used
        r = sparkctl(site, "submit", "--conf", f"{key}={value}", "app.py")
    one_line_exit_2(r, f"--conf: {key}", repr(value), expected)
    assert processes_left(site) == []


@pytest.mark.parametrize("key, value, expected", BAD_VALUES + [("spark.local.dir", "/proc/nope", "cannot create")])
def test_submit_conf_file(site: Path, key: str, value: str, expected: str) -> None:
    f = defaults(site, f"# settings\nspark.app.name from-file\n{key} {value}\n")
    one_line_exit_2(sparkctl(site, "submit", "app.py"), f"{f}:3: {key}", repr(value), expected)


@pytest.mark.parametrize("data, needles", [
    (b"spark.app.name caf\xe9\n", (":1: not UTF-8 text", "offset 18")),
    (b"spark.app.name a\x00b\n", (":1: spark.app.name must not contain a NUL",)),
    (b"spark.app.name x\nthis is not a setting at all !!!\n", (":2: 'this is not a setting at all !!!' is not a setting",)),
])
def test_submit_file_that_is_not_settings(site: Path, data: bytes, needles: tuple[str, ...]) -> None:
    defaults(site, data)
    one_line_exit_2(sparkctl(site, "submit", "app.py"), *needles)


def test_submit_properties_file_and_environment(site: Path) -> None:
    props = write(site / "props.conf", "spark.speculation.quantile 2\n")
    one_line_exit_2(sparkctl(site, "submit", "--properties-file", str(props), "app.py"),
                    f"{props}:1: spark.speculation.quantile must be a number from 0 to 1, not '2'")
    one_line_exit_2(sparkctl(site, "submit", "app.py", env={"SPARKCTL_MASTER": "local-cluster[0,1,512]"}),
                    "SPARKCTL_MASTER: spark.master must be a master URL", "'local-cluster[0,1,512]'")


def test_a_bad_setting_made_by_the_driver_program(site: Path) -> None:
    (site / "app.py").write_text(textwrap.dedent("""\
        from sparkctl import SparkConf, SparkContext
        conf = SparkConf().set("spark.network.timeout", "soon")
        sc = SparkContext(conf=conf)
    """))
    one_line_exit_2(sparkctl(site, "submit", "--master", "local[1]", "app.py"),
                    "sparkctl: SparkConf.set: spark.network.timeout must be a duration", "'soon'")
    assert processes_left(site) == []


def test_unknown_keys_are_one_warning_each_and_the_app_runs(site: Path) -> None:
    f = defaults(site, "spark.master local[1]\nspark.executor.memroy 2g\n")
    r = sparkctl(site, "submit", "--conf", "my.option=1", "app.py")
    assert r.returncode == 0 and "sum 45" in r.stdout, r.stderr
    assert r.stderr.splitlines() == [
        f"sparkctl: warning: {f}:2: spark.executor.memroy is not a sparkctl setting (kept for the application)",
        "sparkctl: warning: --conf: my.option is not a sparkctl setting (kept for the application)"]


@pytest.mark.parametrize("command", [
    ("master", "start", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
    ("worker", "start", "--master", "spark://127.0.0.1:9", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
    ("status", "--master", "spark://127.0.0.1:9"),
])
@pytest.mark.parametrize("line, needle", [
    ("spark.worker.timeout soon", "spark.worker.timeout must be a duration"),
    ("spark.deploy.spreadOut maybe", "spark.deploy.spreadOut must be true or false"),
    ("spark.deploy.maxExecutorRetries abc", "spark.deploy.maxExecutorRetries must be a whole number"),
    ("spark.worker.cleanup.interval 0", "spark.worker.cleanup.interval must be a duration above 0"),
    ("this is not a setting at all !!!", "is not a setting"),
])
def test_daemon_commands_refuse_a_bad_file_before_starting(site: Path, command: tuple[str, ...], line: str,
                                                             needle: str) -> None:
    f = defaults(site, f"spark.app.name x\n{line}\n")
    one_line_exit_2(sparkctl(site, *command, env={"SPARKCTL_SECRET": "s" * 32}), f"{f}:2: ", needle)
    assert not (site / "pids").exists() or list((site / "pids").iterdir()) == []
    assert processes_left(site) == []


@pytest.mark.parametrize("command", [
    ("master", "start", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
    ("status", "--master", "spark://127.0.0.1:9"),
    ("submit", "--master", "local[1]", "app.py"),
])
def test_a_bad_environment_variable_is_named(site: Path, command: tuple[str, ...]) -> None:
    r = sparkctl(site, *command, env={"SPARKCTL_SECRET": "s" * 32, "SPARKCTL_SSL_ENABLED": "maybe"})
    one_line_exit_2(r, "SPARKCTL_SSL_ENABLED: spark.ssl.enabled must be true or false, not 'maybe'")
    assert processes_left(site) == []
