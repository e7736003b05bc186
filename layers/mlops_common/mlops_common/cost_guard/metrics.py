"""Batched CloudWatch GetMetricData: many metric queries in as few calls as the API allows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

# GetMetricData accepts at most 500 MetricDataQuery structures per call.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
MAX_QUERIES_PER_CALL: Final = 500


@dataclass(frozen=True)
class MetricQuery:
    """One metric series to read; `key` is the caller's handle for the result."""

    key: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    period_seconds: int


Datapoints = list[tuple[datetime, float]]


def _chunks(queries: Sequence[MetricQuery], size: int) -> Iterator[Sequence[MetricQuery]]:
    for start in range(0, len(queries), size):
        yield queries[start : start + size]


def get_metric_values(
    cloudwatch: Any,
    queries: Sequence[MetricQuery],
    start: datetime,
    end: datetime,
    *,
    batch_size: int = MAX_QUERIES_PER_CALL,
) -> dict[str, Datapoints]:
    """Datapoints per query key (empty list = no data), newest first, using ceil(len/batch_size) calls
    plus one per further page CloudWatch asks for (botocore's paginator follows the tokens)."""
    if not 0 < batch_size <= MAX_QUERIES_PER_CALL:
        raise ValueError(f"batch_size must be 1..{MAX_QUERIES_PER_CALL}, not {batch_size}")
    results: dict[str, Datapoints] = {query.key: [] for query in queries}
    for batch in _chunks(queries, batch_size):
        # Query ids must start with a lower-case letter and be unique within the call.
        by_id = {f"q{index}": query for index, query in enumerate(batch)}
        request: dict[str, Any] = {
            "MetricDataQueries": [
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": query.namespace,
                            "MetricName": query.metric_name,
                            "Dimensions": [{"Name": n, "Value": v} for n, v in query.dimensions],
                        },
                        "Period": query.period_seconds,
                        "Stat": query.stat,
                    },
                    "ReturnData": True,
                }
                for query_id, query in by_id.items()
            ],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }
        for page in cloudwatch.get_paginator("get_metric_data").paginate(**request):
            for result in page.get("MetricDataResults", []):
                query = by_id.get(result["Id"])
                if query is not None:
                    points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                    results[query.key].extend(points)
    for series in results.values():
        series.sort(key=lambda point: point[0], reverse=True)
    return results
