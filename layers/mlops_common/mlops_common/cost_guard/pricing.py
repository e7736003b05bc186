"""The one instance price table the cost guard uses to estimate what a stop or a delete saves.

Figures are SageMaker on-demand list prices in USD per instance-hour for real-time inference and notebook
instances (the two agree to the cent for the types below), taken from https://aws.amazon.com/sagemaker/pricing/
for us-east-1. Other supported regions apply the region's usual SageMaker uplift over us-east-1. They are
estimates for a summary line, not a bill: savings plans, spot and free tier are ignored. Unknown regions or
instance types give None, and the summary counts those resources as "unpriced" instead of guessing.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# us-east-1, USD per hour.
_US_EAST_1: Final[dict[str, float]] = {
    "ml.t2.medium": 0.056,
    "ml.t2.large": 0.111,
    "ml.t2.xlarge": 0.222,
    "ml.t3.medium": 0.05,
    "ml.t3.large": 0.10,
    "ml.t3.xlarge": 0.20,
    "ml.t3.2xlarge": 0.399,
    "ml.m4.xlarge": 0.24,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
    "ml.m5.24xlarge": 5.53,
    "ml.m6i.large": 0.121,
    "ml.m6i.xlarge": 0.242,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.c5.9xlarge": 1.836,
    "ml.c6i.large": 0.107,
    "ml.c6i.xlarge": 0.214,
    "ml.r5.large": 0.151,
    "ml.r5.xlarge": 0.302,
    "ml.g4dn.xlarge": 0.7364,
    "ml.g4dn.2xlarge": 1.0528,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.12xlarge": 7.09,
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.inf1.xlarge": 0.297,
    "ml.inf2.xlarge": 0.99,
}

# Regional uplift over us-east-1 for SageMaker instances (rounded from the public price pages).
_REGION_FACTOR: Final[dict[str, float]] = {
    "us-east-1": 1.0,
    "us-east-2": 1.0,
    "us-west-2": 1.0,
    "us-west-1": 1.17,
    "ca-central-1": 1.1,
    "eu-west-1": 1.12,
    "eu-west-2": 1.17,
    "eu-central-1": 1.2,
    "eu-north-1": 1.07,
    "ap-southeast-1": 1.26,
    "ap-southeast-2": 1.25,
    "ap-northeast-1": 1.29,
    "ap-south-1": 1.1,
    "sa-east-1": 1.6,
}

ON_DEMAND_USD_PER_HOUR: Final = MappingProxyType(
    {
        region: MappingProxyType({kind: round(price * factor, 4) for kind, price in _US_EAST_1.items()})
        for region, factor in _REGION_FACTOR.items()
    }
)
SUPPORTED_REGIONS: Final = tuple(sorted(ON_DEMAND_USD_PER_HOUR))


def hourly_price(region: str, instance_type: str) -> float | None:
    """USD per hour for one instance of this type in this region, or None when the table does not know it."""
    prices = ON_DEMAND_USD_PER_HOUR.get(region)
    return None if prices is None else prices.get(instance_type)


def fleet_hourly_price(region: str, instances: list[tuple[str, int]]) -> float | None:
    """USD per hour for (instance type, count) pairs; None if any type is unknown (no partial sums)."""
    total = 0.0
    for instance_type, count in instances:
        price = hourly_price(region, instance_type)
        if price is None:
            return None
        total += price * count
    return round(total, 4)
