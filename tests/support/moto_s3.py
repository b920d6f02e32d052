"""moto's S3 server on loopback for the S3 sink's tests: a bucket and an IAM user of its own (moto's
state is the test process's), and, once ``require_signatures`` is called, every request must be
signed with a known key."""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

WRITER_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
)


class MotoS3:
    def __init__(self, port: int) -> None:
        self.port = port
        self.server: ThreadedMotoServer | None = None
        # moto's state is this process's: each server gets a bucket and a user of its own
        self.bucket = "spend-" + secrets.token_hex(6)
        self.user = "sealgate-" + secrets.token_hex(6)
        self.access_key = "AKIAIOSFODNN7EXAMPLE"  # until an IAM user's key replaces it
        self.secret_key = "unused"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def require_signatures(self) -> None:
        """An IAM user allowed s3:*, its key this client's, and from now on every request must
        carry a valid signature by a known key (moto's reset-auth: 0 requests without)."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        iam.create_user(UserName=self.user)
        iam.put_user_policy(UserName=self.user, PolicyName="write", PolicyDocument=WRITER_POLICY)
        made = iam.create_access_key(UserName=self.user)["AccessKey"]
        self.access_key, self.secret_key = made["AccessKeyId"], made["SecretAccessKey"]
        httpx.post(self.endpoint + "/moto-api/reset-auth", content=b"0").raise_for_status()

    def trust_everyone(self) -> None:
        httpx.post(self.endpoint + "/moto-api/reset-auth", content=b"inf").raise_for_status()

    def objects(self) -> dict[str, bytes]:
        client = self.client()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix="sealgate/").get("Contents", [])
        return {
            item["Key"]: client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
            for item in listed
        }

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for body in self.objects().values()
            for line in body.splitlines()
            if line
        ]
