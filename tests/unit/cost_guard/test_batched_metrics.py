"""Batched GetMetricData: at most 500 queries a call, every NextToken page followed, results keyed back."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cost_guard_fakes import NOW, REGION, Aws

from mlops_common.cost_guard.endpoints import EndpointCandidate, Variant, invocation_totals
from mlops_common.cost_guard.metrics import MetricQuery, get_metric_values


def test_1201_queries_take_three_calls_and_every_value_lands_on_its_key(aws: Aws) -> None:
    candidates = [
        EndpointCandidate(
            f"ep-{i}", f"arn:ep-{i}", f"ep-{i}-config", {}, [Variant("AllTraffic", "ml.m5.large", 1)]
        )
        for i in range(1201)
    ]
    for i in (0, 499, 500, 1200):  # first and last of each batch boundary
        aws.invocations(f"ep-{i}", "AllTraffic", i + 1, NOW - timedelta(hours=1))
    sizes: list[int] = []
    aws.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: sizes.append(len(params["MetricDataQueries"])),
    )

    totals = invocation_totals(aws.cloudwatch, candidates, NOW - timedelta(hours=24), NOW)

    assert sizes == [500, 500, 201]
    assert {name: total for name, total in totals.items() if total} == {
        "ep-0": 1,
        "ep-499": 500,
        "ep-500": 501,
        "ep-1200": 1201,
    }


def test_next_token_pages_are_followed_and_merged() -> None:
    # moto never paginates GetMetricData; AWS does when a call returns many datapoints.
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(cloudwatch)
    first, second = NOW - timedelta(minutes=2), NOW - timedelta(minutes=1)
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "q0", "Timestamps": [first], "Values": [3.0]}], "NextToken": "more"},
    )
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "q0", "Timestamps": [second], "Values": [4.0]}]},
        expected_params={
            "MetricDataQueries": ANY,
            "StartTime": NOW - timedelta(hours=1),
            "EndTime": NOW,
            "ScanBy": "TimestampDescending",
            "NextToken": "more",
        },
    )
    query = MetricQuery("nb", "ns", "m", (("d", "v"),), "Minimum", 60)

    with stubber:
        values = get_metric_values(cloudwatch, [query], NOW - timedelta(hours=1), NOW)

    assert values == {"nb": [(second, 4.0), (first, 3.0)]}  # newest first
    stubber.assert_no_pending_responses()


def test_batch_size_beyond_the_api_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"batch_size must be 1\.\.500"):
        get_metric_values(object(), [], NOW, NOW, batch_size=501)
