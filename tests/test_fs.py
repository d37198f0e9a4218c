"""The filesystem seam without a cluster: which filesystem a URL names, Hadoop's settings
mapped to the backend's options, listing rules, and errors that never show a credential."""
from __future__ import annotations

import pickle
from typing import Any

import pytest

from sparkctl.errors import ConfigError, FileSystemError
from sparkctl.fs import LOCAL, FsspecFileSystem, filesystem_for, is_local, scheme_of
from sparkctl.fs.filesystem import translated
from sparkctl.rdd import sources

pytestmark = pytest.mark.timeout(60)
fsspec = pytest.importorskip("fsspec")


@pytest.mark.parametrize("url, scheme", [
    ("/data/x.txt", None), ("data/x.txt", None), ("file:/data/x", "file"), ("file:///data/x", "file"),
    ("s3a://b/k", "s3a"), ("S3://b/k", "s3"), ("gs://b/k", "gs"), ("memory://x", "memory"),
    ("http://127.0.0.1:8/x", "http"), ("hdfs://nn:8020/x", "hdfs"),
])
def test_scheme_of(url: str, scheme: str | None) -> None:
    assert scheme_of(url) == scheme
    assert is_local(url) == (scheme in (None, "file"))


def test_local_paths_use_the_os_filesystem_and_survive_pickling() -> None:
    assert filesystem_for("/tmp/x") is LOCAL
    assert filesystem_for("file:///tmp/x") is LOCAL
    assert pickle.loads(pickle.dumps(LOCAL)) is LOCAL


def test_s3a_settings_become_s3fs_options() -> None:
    conf = {
        "spark.hadoop.fs.s3a.access.key": "AKIDEXAMPLE", "spark.hadoop.fs.s3a.secret.key": "s3cr3t-value",
        "spark.hadoop.fs.s3a.session.token": "tok-123", "spark.hadoop.fs.s3a.endpoint": "127.0.0.1:9000",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false", "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1", "spark.hadoop.fs.s3a.block.size": "8m",
    }
    fs = filesystem_for("s3a://bucket/key", conf, environ={})
    assert isinstance(fs, FsspecFileSystem) and fs.protocol == "s3" and fs.scheme == "s3a"
    assert fs.options == {"key": "AKIDEXAMPLE", "secret": "s3cr3t-value", "token": "tok-123", "use_ssl": False,
                          "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
                          "config_kwargs": {"s3": {"addressing_style": "path"}}}
    assert fs.block_size == 8 * 1024 * 1024
    assert fs.object_store
    assert "s3cr3t" not in repr(fs) and "AKID" not in repr(fs)
    again = pickle.loads(pickle.dumps(fs))  # what a task carries: scheme and options, no live client
    assert again.options == fs.options and again._fs is None


def test_per_bucket_settings_and_the_drivers_environment() -> None:
    conf = {"spark.hadoop.fs.s3a.access.key": "general", "spark.hadoop.fs.s3a.secret.key": "general-secret",
            "spark.hadoop.fs.s3a.bucket.special.access.key": "special",
            "spark.hadoop.fs.s3a.bucket.special.secret.key": "special-secret"}
    assert filesystem_for("s3a://special/x", conf, environ={}).options["key"] == "special"
    assert filesystem_for("s3a://other/x", conf, environ={}).options["key"] == "general"
    env = {"AWS_ACCESS_KEY_ID": "from-env", "AWS_SECRET_ACCESS_KEY": "env-secret",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:1234"}
    fs = filesystem_for("s3://b/x", None, environ=env)
    assert fs.options["key"] == "from-env" and fs.options["secret"] == "env-secret"
    assert fs.options["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:1234"
    # settings win over the environment, as Spark's explicit keys do
    assert filesystem_for("s3://b/x", conf, environ=env).options["key"] == "general"
    anon = filesystem_for("s3a://b/x", {"spark.hadoop.fs.s3a.aws.credentials.provider":
                                        "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"}, environ=env)
    assert anon.options.get("anon") is True and "key" not in anon.options


def test_bad_settings_name_their_key() -> None:
    with pytest.raises(ConfigError, match="spark.hadoop.fs.s3a.path.style.access must be true or false"):
        filesystem_for("s3a://b/x", {"spark.hadoop.fs.s3a.path.style.access": "yes"}, environ={})
    with pytest.raises(ConfigError, match="fs.s3a.block.size"):
        filesystem_for("s3a://b/x", {"spark.hadoop.fs.s3a.block.size": "big"}, environ={})
    with pytest.raises(FileSystemError, match="spark.hadoop.fs.s3a.secret.key .* is not set"):
        filesystem_for("s3a://b/x", {"spark.hadoop.fs.s3a.access.key": "only-a-key"}, environ={})


def test_unknown_scheme_and_missing_backend_are_one_line() -> None:
    with pytest.raises(FileSystemError) as e:
        filesystem_for("nosuch://bucket/x")
    assert "unknown filesystem scheme 'nosuch'" in str(e.value) and "\n" not in str(e.value)
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(FileSystemError, match=r"pip install 'sparkctl\[gcs\]'"):
            filesystem_for("gs://bucket/x").exists("bucket/x")


def test_azure_and_hdfs_urls() -> None:
    conf = {"spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net": "azure-key"}
    fs = filesystem_for("abfss://box@acct.dfs.core.windows.net/dir/f.txt", conf)
    assert fs.options == {"account_name": "acct", "account_key": "azure-key"}
    assert fs.strip("abfss://box@acct.dfs.core.windows.net/dir/f.txt") == "box/dir/f.txt"
    hdfs = filesystem_for("hdfs://namenode:8020/data/f.txt")
    assert hdfs.options == {"host": "namenode", "port": 8020}
    assert hdfs.strip("hdfs://namenode:8020/data/f.txt") == "/data/f.txt"
    assert hdfs.url("/data/f.txt") == "hdfs://namenode:8020/data/f.txt"


def test_listing_skips_hidden_files_and_expands_globs() -> None:
    fs = filesystem_for("memory://listing")
    for name, data in [("a.txt", b"a\n"), ("b.txt", b"bb\n"), ("_SUCCESS", b""), (".a.crc", b"x"),
                       ("sub/c.txt", b"c\n")]:
        fs.write_bytes(fs.strip(f"memory://listing/{name}"), data)
    names = [s.path.rsplit("/", 1)[1] for s in fs.expand("memory://listing")]
    assert names == ["a.txt", "b.txt"]
    assert [s.size for s in fs.expand("memory://listing/*.txt")] == [2, 3]
    assert [s.path for s in fs.expand("memory://listing/a.txt,memory://listing/sub")] == \
        ["/listing/a.txt", "/listing/sub/c.txt"]
    with pytest.raises(FileNotFoundError, match="memory://listing/nope"):
        fs.expand("memory://listing/nope")
    with pytest.raises(FileNotFoundError):
        fs.expand("memory://listing/*.csv")


def test_byte_range_splits_of_an_object_cover_each_line_once() -> None:
    fs = filesystem_for("memory://splits")
    lines = [f"line {i} " + "x" * (i % 97) for i in range(5000)]
    data = ("\n".join(lines) + "\n").encode()
    fs.write_bytes("/splits/f.txt", data)
    fs.block_size = 4096  # many splits, cut mid-line
    found = sources.input_files(None, "memory://splits/f.txt")
    assert [(f.scheme, s.size) for f, s in found] == [("memory", len(data))]
    found = [(fs, found[0][1])]
    splits = sources.file_splits(found, 2)
    assert len(splits) >= len(data) // 4096
    got = [line for s in splits for block in sources._read_range(s.fs, s.path, s.start, s.length)
           for line in sources._split_lines(block, True)]
    assert got == lines


class _Refusing:
    """An fsspec-like filesystem whose store refuses every call, quoting the secret back."""

    def exists(self, path: str) -> Any:
        raise PermissionError("The request signature for key s3cr3t-value does not match\nmore detail")


def test_backend_errors_become_one_line_without_the_secret() -> None:
    fs = filesystem_for("s3a://b/x", {"spark.hadoop.fs.s3a.access.key": "AKIDEXAMPLE",
                                      "spark.hadoop.fs.s3a.secret.key": "s3cr3t-value"}, environ={})
    fs._fs = _Refusing()
    with pytest.raises(FileSystemError) as e:
        fs.exists("b/x")
    message = str(e.value)
    assert message.startswith("access to s3a://b/x was refused") and "\n" not in message
    assert "s3cr3t-value" not in message and "redacted" in message
    with pytest.raises(FileNotFoundError), translated(fs, "b/x"):
        raise FileNotFoundError("b/x")  # stays itself: callers handle it


class _Located(FsspecFileSystem):
    def block_hosts(self, path: str, start: int, length: int) -> list[str]:
        return ["127.0.0.2"] if start == 0 else ["127.0.0.3"]


def test_splits_carry_the_hosts_the_filesystem_reports() -> None:
    from sparkctl.fs import FileStatus
    fs = _Located("memory", {}, block_size=100)
    splits = sources.file_splits([(fs, FileStatus("/f", 250))], 1)
    assert [s.hosts for s in splits] == [("127.0.0.2",), ("127.0.0.3",), ("127.0.0.3",)]
    rdd = sources.FileSplitsRDD.__new__(sources.FileSplitsRDD)
    rdd._splits = splits
    assert rdd.preferred_hosts(0) == ("127.0.0.2",)
