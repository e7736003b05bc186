"""Fixtures for the cost guard tests (helpers live in cost_guard_fakes, importable by the test modules)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from cost_guard_fakes import BUCKET, COMMON, REGION, Aws
from moto import mock_aws

from mlops_common.cost_guard.settings import EndpointSettings, NotebookSettings, parse_office_hours


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield Aws(
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            s3=s3,
        )


@pytest.fixture
def endpoint_settings() -> EndpointSettings:
    return EndpointSettings(
        common=COMMON, idle_window=timedelta(hours=24), grace=timedelta(hours=24), restore_bucket=BUCKET
    )


@pytest.fixture
def notebook_settings() -> NotebookSettings:
    return NotebookSettings(
        common=COMMON,
        idle=timedelta(minutes=60),
        fallback="max-uptime",
        max_uptime=timedelta(hours=12),
        office_hours=parse_office_hours("Mon-Fri 08:00-19:00 UTC"),
    )
