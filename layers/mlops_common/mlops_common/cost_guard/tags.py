"""Resource tags and the tag-based rules both sweepers share (opt-out, scope)."""

from __future__ import annotations

from typing import Any

from mlops_common.cost_guard.settings import OPT_OUT_TAG, SCOPE_TAG, tag_is_true


def resource_tags(sagemaker: Any, arn: str) -> dict[str, str]:
    """All tags of a SageMaker resource (ListTags pages at 50 by default)."""
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({tag["Key"]: tag.get("Value", "") for tag in page.get("Tags", [])})
    return tags


def tag_exclusion(tags: dict[str, str], scope: str) -> str | None:
    """Why the tags exclude this resource from the sweep, or None when it may be swept."""
    if tag_is_true(tags, OPT_OUT_TAG):
        return f"opted out with tag {OPT_OUT_TAG}=true"
    if scope and tags.get(SCOPE_TAG) != scope:
        return f"outside the sweep scope (needs tag {SCOPE_TAG}={scope})"
    return None
