"""Every name the pipeline builds, with its length budget.

SageMaker names (jobs, models, endpoint configs, endpoints, model package groups): 1-63 characters matching
``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``. Step Functions execution names: at most 80 characters.
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html#sagemaker-CreateTrainingJob-request-TrainingJobName
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SAGEMAKER_NAME_MAX = 63
EXECUTION_NAME_MAX = 80
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# The stack name parameter allows at most 43 characters (bucket names); budgets below rely on it.
STACK_NAME_MAX = 43
# What the state machines append to a per-run prefix: "-" + step (at most 5: proc, train, eval, model, cfg)
# + "-" + the second group of a UUID (4 hex), evaluated by intrinsics on every attempt.
STEP_SUFFIX_MAX = 1 + 5 + 1 + 4
PREFIX_MAX = SAGEMAKER_NAME_MAX - STEP_SUFFIX_MAX  # 52
RUN_HASH_LEN = 8
_NAME_HASH_LEN = 6
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def short_hash(text: str, length: int = RUN_HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def slug(text: str, max_len: int) -> str:
    """Lowercase a-z0-9 and single hyphens, at most max_len, unique per input text.

    A hash of the original is appended whenever the text had to change, so "My Data" and "my-data" never share
    an endpoint or a model package group.
    """
    if max_len < 1:
        raise ValueError(f"no room for a name: max_len={max_len}")
    clean = _NOT_SLUG.sub("-", text.lower()).strip("-") or "dataset"
    if clean == text and len(clean) <= max_len:
        return clean
    tag = short_hash(text, _NAME_HASH_LEN)
    if max_len <= _NAME_HASH_LEN:
        return tag[:max_len]
    head = clean[: max_len - _NAME_HASH_LEN - 1].strip("-")
    return f"{head}-{tag}" if head else tag


def execution_name(dataset: str, content_identity: str) -> str:
    """The run id: one per dataset content (pipeline/snapshot.py identity), so the same data seen twice names
    the same execution and starts nothing."""
    # max: 63 (slug) + 1 + 16 (hash) = 80
    return f"{slug(dataset, EXECUTION_NAME_MAX - 17)}-{content_identity[:16]}"


def waiter_name(dataset: str, token: str) -> str:
    """A batch waiter's execution name, one per quiet period (a random token, kept in the table)."""
    # max: 63 (slug) + 1 + 16 = 80
    return f"{slug(dataset, EXECUTION_NAME_MAX - 17)}-{token[:16]}"


def dataset_resource_name(stack_name: str, dataset: str) -> str:
    """Endpoint, model package group and experiment name of a dataset: '<stack>-<dataset slug>'."""
    _check_stack_name(stack_name)
    # max: 43 (stack) + 1 + at least 19 (slug) = 63
    return f"{stack_name}-{slug(dataset, SAGEMAKER_NAME_MAX - len(stack_name) - 1)}"


# Stages (pipeline/stages.py): prod keeps the dataset's own name, so a stack switched from one stage to two
# keeps serving from the same endpoint; staging adds a suffix with a double hyphen, which no slug holds, so
# the staging endpoint of 'iris' and the endpoint of a dataset named 'iris-staging' never meet.
STAGING, PROD = "staging", "prod"
STAGES = (STAGING, PROD)
STAGING_SUFFIX = f"--{STAGING}"


def stage_endpoint_name(stack_name: str, dataset: str, stage: str | None = None) -> str:
    """The endpoint of a dataset's stage: '<stack>-<dataset slug>' (prod, or no stages) or
    '<stack>-<dataset slug>--staging'."""
    if stage in (None, PROD):
        return dataset_resource_name(stack_name, dataset)
    if stage != STAGING:
        raise ValueError(f"stage {stage!r} must be one of {', '.join(STAGES)}")
    _check_stack_name(stack_name)
    # max: 43 (stack) + 1 + at least 10 (slug) + 9 ("--staging") = 63
    room = SAGEMAKER_NAME_MAX - len(stack_name) - 1 - len(STAGING_SUFFIX)
    return f"{stack_name}-{slug(dataset, room)}{STAGING_SUFFIX}"


def run_prefix(stack_name: str, dataset: str, run_id: str) -> str:
    """Per-run prefix for job names; the state machine appends '-<step>-<uuid4>' on every attempt.

    max: 43 (stack) + 1 + slug (whatever is left) + 1 + 8 (run hash) = 52; + 11 (step suffix) = 63
    """
    _check_stack_name(stack_name)
    run_hash = short_hash(run_id)
    room = PREFIX_MAX - len(stack_name) - 1 - RUN_HASH_LEN - 1
    if room < 3:
        return f"{stack_name}-{run_hash}"
    return f"{stack_name}-{slug(dataset, room)}-{run_hash}"


def deploy_prefix(stack_name: str, dataset: str, package_arn: str) -> str:
    """Per-package prefix for model and endpoint config names (the deploy machine adds '-model-<uuid4>')."""
    return run_prefix(stack_name, dataset, package_arn)


def trial_name(stack_name: str, run_id: str) -> str:
    """'<stack>-<run id>': trial names allow 120 characters (max: 43 + 1 + 80 = 124, so hashed past 120)."""
    return slug(f"{stack_name}-{run_id}", 120)


# Tag values and CustomerMetadataProperties values: letters, numbers, spaces and _.:/=+-@ (the service model's
# pattern ([\p{L}\p{Z}\p{N}_.:/=+\-@]*)), at most 256 characters each.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModelPackage.html#sagemaker-CreateModelPackage-request-CustomerMetadataProperties
TAG_VALUE_MAX = 256
METADATA_VALUE_MAX = 256
_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
VALUE_CONSTRAINT = "letters, numbers, spaces and _.:/=+-@"


def _allowed_in_value(char: str) -> bool:
    return char in _VALUE_PUNCTUATION or unicodedata.category(char)[0] in "LNZ"


def value_problem(value: str, max_len: int) -> str | None:
    """Why SageMaker would reject this tag or metadata value, or None."""
    bad = sorted({char for char in value if not _allowed_in_value(char)})
    if bad:
        return f"may contain only {VALUE_CONSTRAINT} (found {''.join(bad)!r})"
    if len(value) > max_len:
        return f"may be at most {max_len} characters (has {len(value)})"
    return None


def safe_value(value: object, max_len: int = TAG_VALUE_MAX) -> str:
    """A tag or metadata value SageMaker accepts: other characters become '_', cut to max_len."""
    return "".join(c if _allowed_in_value(c) else "_" for c in str(value))[:max_len]


def is_valid_sagemaker_name(name: str) -> bool:
    return bool(SAGEMAKER_NAME.match(name))


def _check_stack_name(stack_name: str) -> None:
    if not stack_name or len(stack_name) > STACK_NAME_MAX or not SAGEMAKER_NAME.match(stack_name):
        raise ValueError(
            f"stack name {stack_name!r} must be 1-{STACK_NAME_MAX} characters of a-z, 0-9 and '-' "
            "(see the StackName parameter)"
        )
