"""Which stack, which account: the target of every command, and the AWS clients that reach it.

boto3 is imported only when a command first needs a client, so `mlops --help` stays fast.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlops_cli.errors import CliError

LOCAL_STACK = "mlops-local"  # what `make local-up` deploys
LOCAL_REGION = "us-east-1"
DEFAULT_LOCAL_PORT = 4566
SAMCONFIG = "samconfig.toml"


def local_endpoint() -> str:
    return f"http://127.0.0.1:{os.environ.get('LOCAL_AWS_PORT') or DEFAULT_LOCAL_PORT}"


def find_samconfig(start: Path | None = None) -> Path | None:
    """samconfig.toml in the current folder or a parent (where `sam deploy` would read it)."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / SAMCONFIG
        if path.is_file():
            return path
    return None


def samconfig_stack(config_env: str, path: Path | None) -> tuple[str | None, str | None]:
    """(stack name, region) of a samconfig.toml environment, as `sam deploy --config-env` reads them."""
    if path is None:
        return None, None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CliError(f"{path} is not readable TOML ({error}); fix it or pass --stack") from error
    env = data.get(config_env)
    if not isinstance(env, dict):
        known = ", ".join(k for k, v in data.items() if isinstance(v, dict)) or "none"
        raise CliError(f"{path} has no [{config_env}] environment (it has: {known}); pass --config-env")
    stack = env.get("global", {}).get("parameters", {}).get("stack_name")
    stack = stack or env.get("deploy", {}).get("parameters", {}).get("stack_name")
    region = env.get("deploy", {}).get("parameters", {}).get("region")
    return stack, region


@dataclass
class Target:
    """Where the commands go: a stack name in one account and region (or the offline stack)."""

    stack: str
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    local: bool = False

    @classmethod
    def resolve(
        cls,
        *,
        stack: str | None,
        config_env: str,
        profile: str | None,
        region: str | None,
        endpoint_url: str | None,
        local: bool,
    ) -> Target:
        if local and endpoint_url:
            raise CliError("--local and --endpoint-url both name an endpoint: give one of them")
        if local:
            return cls(stack or LOCAL_STACK, None, region or LOCAL_REGION, local_endpoint(), True)
        config_stack, config_region = samconfig_stack(config_env, find_samconfig())
        name = stack or os.environ.get("MLOPS_STACK") or config_stack
        if not name:
            raise CliError(
                "no stack named: pass --stack NAME, set MLOPS_STACK, or run from the folder of samconfig.toml"
            )
        return cls(name, profile, region or _environment_region() or config_region, endpoint_url, False)


def _environment_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


@dataclass
class Aws:
    """boto3 clients for the target, and what the stack says about itself (outputs, parameters, resources)."""

    target: Target
    _clients: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def session(self) -> Any:
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            if self.target.local:
                # The emulator accepts any key; never send a real one to it.
                return boto3.Session(
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",  # noqa: S106 - the emulator's dummy credentials
                    region_name=self.target.region,
                )
            return boto3.Session(profile_name=self.target.profile, region_name=self.target.region)
        except ProfileNotFound as error:
            raise CliError(f"{error}: pass an existing --profile (aws configure list-profiles)") from error

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise CliError("no AWS region: pass --region, set AWS_REGION, or set region in samconfig.toml")
        return str(region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            if self.target.local:
                check_local_endpoint(self.target.endpoint_url or local_endpoint())
            self._clients[service] = self.session.client(
                service,
                region_name=self.region,
                endpoint_url=self.target.endpoint_url,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5),
            )
        return self._clients[service]

    # ------------------------------------------------------------ the stack
    @cached_property
    def stack(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        cfn = self.client("cloudformation")
        try:
            return dict(cfn.describe_stacks(StackName=self.target.stack)["Stacks"][0])
        except ClientError as error:
            if "does not exist" in str(error):
                where = "the offline stack" if self.target.local else f"region {self.region}"
                hint = (
                    "start it with `make local-up` (it deploys mlops-local)"
                    if self.target.local
                    else "pass --stack NAME (and --region/--profile), or deploy it with sam deploy"
                )
                raise CliError(f"stack {self.target.stack} not found in {where}: {hint}") from error
            raise

    @cached_property
    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o["OutputValue"] for o in self.stack.get("Outputs", [])}

    @cached_property
    def parameters(self) -> dict[str, str]:
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in self.stack.get("Parameters", [])}

    def output(self, key: str, what: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise CliError(
                f"stack {self.target.stack} has no {key} output ({what}); update the stack to this version"
            )
        return value

    @cached_property
    def resources(self) -> list[dict[str, Any]]:
        pages = self.client("cloudformation").get_paginator("list_stack_resources")
        return [
            r for page in pages.paginate(StackName=self.target.stack) for r in page["StackResourceSummaries"]
        ]

    def physical_ids(self, resource_type: str) -> dict[str, str]:
        """Logical id -> physical id of the stack's resources of one type."""
        return {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in self.resources
            if r["ResourceType"] == resource_type and r.get("PhysicalResourceId")
        }


def check_local_endpoint(url: str) -> None:
    """Fail in one line, at once, when nothing listens where the offline stack should be."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        if sock.connect_ex((host, port)) != 0:
            raise CliError(
                f"the offline stack is not running (nothing answers on {url}): start it with `make local-up`"
                " (LOCAL_AWS_PORT sets its port)"
            )
