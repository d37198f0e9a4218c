"""A real S3-protocol server for tests: moto's standalone server, over HTTP on 127.0.0.1.

Started with IAM authentication on, so a wrong key is refused as AWS refuses it: the
first few requests (unauthenticated, by moto's ``INITIAL_NO_AUTH_ACTION_COUNT``) create a
user with an access key and a bucket; every later request must be signed with that key.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

#: IAM: create user, put its policy, create its key; S3: create the bucket
_SETUP_REQUESTS = 4
BUCKET = "sparkctl-data"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_REQUESTS), AWS_DEFAULT_REGION=REGION)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.pop(key, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the S3 server (moto) did not start")
                time.sleep(0.05)
        self.key, self.secret = self._make_user()

    def _client(self, service: str, key: str = "setup", secret: str = "setup") -> Any:
        import boto3
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def _make_user(self) -> tuple[str, str]:
        iam = self._client("iam")
        iam.create_user(UserName="sparkctl")
        iam.put_user_policy(UserName="sparkctl", PolicyName="all", PolicyDocument=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'))
        key = iam.create_access_key(UserName="sparkctl")["AccessKey"]
        self._client("s3").create_bucket(Bucket=BUCKET)
        return key["AccessKeyId"], key["SecretAccessKey"]

    def s3(self) -> Any:
        """A boto3 client with the server's good key: the tests' own view of the store."""
        return self._client("s3", self.key, self.secret)

    def settings(self, key: str | None = None, secret: str | None = None) -> dict[str, str]:
        """The Spark settings that point s3a:// at this server."""
        return {
            "spark.hadoop.fs.s3a.endpoint": self.endpoint,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.endpoint.region": REGION,
            "spark.hadoop.fs.s3a.access.key": key or self.key,
            "spark.hadoop.fs.s3a.secret.key": secret or self.secret,
        }

    def keys(self, prefix: str = "") -> list[str]:
        s3 = self.s3()
        out: list[str] = []
        token: dict[str, Any] = {}
        while True:
            page = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, **token)
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def put(self, key: str, data: bytes) -> str:
        self.s3().put_object(Bucket=BUCKET, Key=key, Body=data)
        return f"s3a://{BUCKET}/{key}"

    def get(self, key: str) -> bytes:
        return bytes(self.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
