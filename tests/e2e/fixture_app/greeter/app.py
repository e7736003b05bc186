"""Fixture handler: proves the layer, the environment and the Lambda context reach the code."""

import os

from fixture_lib import greet


class GreetingRefused(ValueError):
    pass


def handler(event, context):
    if event.get("refuse"):
        raise GreetingRefused(f"refusing to greet {event.get('name')}")
    return {
        "greeting": greet(os.environ["GREETING"], event.get("name", "world")),
        "bucket": os.environ["DROP_BUCKET"],
        "function": context.function_name,
    }
