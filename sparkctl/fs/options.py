"""Which filesystem a URL names, and its options: Hadoop's settings mapped to fsspec's.

Spark users configure object stores with Hadoop keys under ``spark.hadoop.``; the same
keys work here and become the fsspec backend's options:

| Spark setting (``spark.hadoop.`` + ...) | s3fs option |
| --- | --- |
| ``fs.s3a.access.key``, ``fs.s3a.secret.key``, ``fs.s3a.session.token`` | ``key``, ``secret``, ``token`` |
| ``fs.s3a.endpoint`` (``host[:port]`` or a URL) | ``client_kwargs.endpoint_url`` |
| ``fs.s3a.endpoint.region`` | ``client_kwargs.region_name`` |
| ``fs.s3a.path.style.access`` | ``config_kwargs.s3.addressing_style = path`` |
| ``fs.s3a.connection.ssl.enabled`` | ``use_ssl`` (and the endpoint's default scheme) |
| ``fs.s3a.aws.credentials.provider`` = ``...AnonymousAWSCredentialsProvider`` | ``anon`` |
| ``fs.s3a.block.size`` | how big a byte-range split is |
| ``fs.s3a.bucket.BUCKET.KEY`` | ``fs.s3a.KEY`` for that bucket only |

For GCS, ``google.cloud.auth.service.account.json.keyfile`` is read on the driver and
passed as gcsfs's ``token``, and ``fs.gs.project.id`` as its ``project``; for Azure,
``fs.azure.account.key.ACCOUNT.dfs.core.windows.net`` gives adlfs's ``account_name`` and
``account_key``. Anything not set falls back to the backend's own chain: environment
variables, ``~/.aws/credentials``, instance metadata... As Spark does, the driver's
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and
``AWS_ENDPOINT_URL`` are passed on to the executors with the tasks (over the authenticated
connection), so executors on other hosts read with the driver's identity.

The settings are shown as ``*********(redacted)`` in the UI and event logs by
``spark.redaction.regex`` (its default matches ``secret``, ``token`` and ``access.key``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from sparkctl.errors import ConfigError, FileSystemError
from sparkctl.fs.filesystem import LOCAL, SCHEMES, FileSystem, FsspecFileSystem, scheme_of, unknown_scheme

HADOOP = "spark.hadoop."
_S3_KEYS = {"access.key": "key", "secret.key": "secret", "session.token": "token"}
_ENV = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}


def filesystem_for(url: str, conf: Any = None, environ: Mapping[str, str] | None = None) -> FileSystem:
    """The filesystem *url* is on, with its options from *conf* (a SparkConf, a mapping of
    settings, or None) and the driver's environment. A plain path is a local file."""
    scheme = scheme_of(url)
    if scheme in (None, "file"):
        return LOCAL
    if scheme not in SCHEMES and not _fsspec_knows(scheme):
        raise unknown_scheme(scheme)
    settings = _hadoop_settings(conf)
    env = os.environ if environ is None else environ
    protocol = SCHEMES.get(scheme, (scheme, None))[0]
    block_size = None
    options: dict[str, Any] = {}
    if protocol == "s3":
        options, block_size = _s3_options(url, settings, env)
    elif protocol == "gcs":
        options = _gcs_options(settings)
    elif protocol == "abfs":
        options = _azure_options(url, settings)
    elif protocol == "hdfs":
        options = _hdfs_options(url)
    authority = url.split("://", 1)[1].split("/", 1)[0] if protocol == "hdfs" else ""
    return FsspecFileSystem(scheme, options, block_size, authority)


def _fsspec_knows(scheme: str) -> bool:
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:
        return False
    return scheme in known_implementations or scheme in registry


def _hadoop_settings(conf: Any) -> dict[str, str]:
    if conf is None:
        return {}
    items = conf.getAll() if hasattr(conf, "getAll") else list(dict(conf).items())
    return {k[len(HADOOP):]: str(v) for k, v in items if k.startswith(HADOOP)}


def _bool(settings: Mapping[str, str], key: str, default: bool, prefix: str = "fs.s3a.") -> bool:
    raw = settings.get(key)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        name = HADOOP + prefix + key
        raise ConfigError(f"{name} must be true or false, not {raw!r}", key=name, value=raw)
    return value == "true"


def _s3_options(url: str, settings: Mapping[str, str], env: Mapping[str, str]) -> tuple[dict[str, Any], int | None]:
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    s3 = {k[len("fs.s3a."):]: v for k, v in settings.items() if k.startswith("fs.s3a.") and ".bucket." not in "." + k}
    prefix = f"fs.s3a.bucket.{bucket}."
    s3.update({k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix)})
    options: dict[str, Any] = {}
    for env_key, option in _ENV.items():
        if env.get(env_key):
            options[option] = env[env_key]
    for key, option in _S3_KEYS.items():
        if s3.get(key):
            options[option] = s3[key]
    if "key" in options and "secret" not in options or "secret" in options and "key" not in options:
        missing = "fs.s3a.secret.key" if "key" in options else "fs.s3a.access.key"
        raise FileSystemError(f"s3 credentials are incomplete: {HADOOP}{missing} (or its AWS_ environment "
                              "variable) is not set")
    client: dict[str, Any] = {}
    ssl = _bool(s3, "connection.ssl.enabled", True)
    endpoint = s3.get("endpoint") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint if "://" in endpoint else ("https://" if ssl else "http://") + endpoint
    region = s3.get("endpoint.region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    if client:
        options["client_kwargs"] = client
    if not ssl:
        options["use_ssl"] = False
    if _bool(s3, "path.style.access", False):
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    if "Anonymous" in s3.get("aws.credentials.provider", ""):
        options = {k: v for k, v in options.items() if k not in ("key", "secret", "token")}
        options["anon"] = True
    block_size = None
    if s3.get("block.size"):
        from sparkctl.settings import Size
        try:
            block_size = Size().parse(s3["block.size"])
        except ValueError as e:
            raise ConfigError(f"{HADOOP}fs.s3a.block.size: {e}", key=HADOOP + "fs.s3a.block.size",
                              value=s3["block.size"]) from None
    return options, block_size


def _gcs_options(settings: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    keyfile = settings.get("google.cloud.auth.service.account.json.keyfile")
    if keyfile:
        try:
            with open(os.path.expanduser(keyfile), encoding="utf-8") as f:
                options["token"] = json.load(f)
        except (OSError, ValueError) as e:
            raise FileSystemError(f"{HADOOP}google.cloud.auth.service.account.json.keyfile: cannot read "
                                  f"{keyfile}: {type(e).__name__}") from None
    if settings.get("fs.gs.project.id"):
        options["project"] = settings["fs.gs.project.id"]
    return options


def _azure_options(url: str, settings: Mapping[str, str]) -> dict[str, Any]:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    account = netloc.split("@", 1)[1].split(".", 1)[0] if "@" in netloc else None
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if key.startswith("fs.azure.account.key."):
            name = key[len("fs.azure.account.key."):].split(".", 1)[0]
            if account is None or name == account:
                options = {"account_name": name, "account_key": value}
                break
    return options


def _hdfs_options(url: str) -> dict[str, Any]:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = netloc.partition(":")
    options: dict[str, Any] = {"host": host or "default"}
    if port:
        options["port"] = int(port)
    return options
