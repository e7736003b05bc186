"""SageMaker requests checked like AWS checks them, and tags that behave like AWS's.

Gaps filled (moto 5.2.5):
- moto accepts what SageMaker rejects: a tag value with `(`, a 300-character CustomerMetadataProperties
  value, a processing job's MaxRuntimeInSeconds above 777,600, a name longer than 63 characters. Here every
  SageMaker request is checked against the botocore service model's constraints (pattern, min/max length,
  min/max value, enum, required members), recursively through structures, lists and maps, before moto
  handles it; a violation answers 400 ValidationException with AWS's wording ("1 validation error detected:
  Value '...' at 'tags.1.member.value' failed to satisfy constraint: Member must satisfy regular expression
  pattern: ..."). The patterns use Java classes such as `\\p{L}`: they are matched (whole value) with the
  `regex` package. A pattern `regex` cannot compile is skipped and counted in `UNCHECKED_PATTERNS`.
- AddTags appends a second tag with the same key (AWS replaces the value), and model package versions
  (`model-package/<group>/<version>`) cannot be tagged at all.

Not checked (listed in the README's "not reproduced"): rules that are not in the service model (which
instance types a job accepts, cross-field rules such as MaxWaitTimeInSeconds >= MaxRuntimeInSeconds, the
28-day training limit, whether an S3 URI or image exists), and timestamps/blobs.

moto internals touched: `moto.sagemaker.responses.SageMakerResponse.call_action` (added on the class, wraps
BaseResponse's); `moto.sagemaker.models.SageMakerModelBackend.add_tags` (replaced) and
`._get_resource_from_arn` (wrapped).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from offline.seams import _patching

UNCHECKED_PATTERNS: set[str] = set()
_NUMBER_TYPES = {"integer", "long", "float", "double"}


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _compiled(pattern: str) -> Any:
    import regex

    # Java writes "any supplementary character" as a UTF-16 surrogate-pair range; Python uses code points.
    translated = pattern.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
    try:
        return regex.compile(translated)
    except regex.error:
        UNCHECKED_PATTERNS.add(pattern)
        return None


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _size_problems(metadata: dict[str, Any], size: int, unit: str) -> list[str]:
    found = []
    if "min" in metadata and size < metadata["min"]:
        found.append(f"have {unit} greater than or equal to {metadata['min']}")
    if "max" in metadata and size > metadata["max"]:
        found.append(f"have {unit} less than or equal to {metadata['max']}")
    return found


def _string_problems(shape: Any, value: str) -> list[str]:
    found = _size_problems(shape.metadata, len(value), "length")
    if shape.enum and value not in shape.enum:
        found.append(f"satisfy enum value set: [{', '.join(shape.enum)}]")
    pattern = shape.metadata.get("pattern")
    compiled = _compiled(pattern) if pattern else None
    if compiled is not None and compiled.fullmatch(value) is None:
        found.append(f"satisfy regular expression pattern: {pattern}")
    return found


def _member_problems(shape: Any, value: Any, where: str) -> list[str]:
    """Problems of the values a structure, list or map holds."""
    found: list[str] = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for name in shape.required_members:
            if name not in value:
                missing = _path(where, name)
                found.append(
                    f"Value null at '{missing}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in shape.members.items():
            if name in value:
                found += problems(member, value[name], _path(where, name))
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value, start=1):
            found += problems(shape.member, item, f"{where}.{index}.member")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += problems(shape.key, key, f"{where}.{key}.key")
            found += problems(shape.value, item, f"{where}.{key}.value")
    return found


def problems(shape: Any, value: Any, where: str = "") -> list[str]:
    """Every constraint of `shape` that `value` breaks, worded as SageMaker words them."""
    kind = shape.type_name
    if value is None:
        rules: list[str] = []
    elif kind == "string" and isinstance(value, str):
        rules = _string_problems(shape, value)
    elif kind in _NUMBER_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        rules = _size_problems(shape.metadata, value, "value")
    elif kind in ("list", "map") and isinstance(value, list | dict):
        rules = _size_problems(shape.metadata, len(value), "length")
    else:
        rules = []
    found = [
        f"Value '{_shown(value)}' at '{where}' failed to satisfy constraint: Member must {rule}"
        for rule in rules
    ]
    return found + _member_problems(shape, value, where)


def request_problem(operation: str, params: dict[str, Any]) -> str | None:
    """SageMaker's ValidationException message for this request, or None when it passes."""
    from botocore.model import OperationNotFoundError

    try:
        input_shape = _service_model().operation_model(operation).input_shape
    except OperationNotFoundError:  # an operation botocore does not know: moto answers it as it would
        return None
    if input_shape is None:
        return None
    found = problems(input_shape, params)
    if not found:
        return None
    count = f"{len(found)} validation error{'s' if len(found) > 1 else ''} detected: "
    return count + "; ".join(found)


def _install_validation() -> None:
    from moto.core.responses import ActionResult, BaseResponse
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    original = _patching.original(BaseResponse, "call_action")

    def call_action(self: Any) -> Any:
        try:
            params = json.loads(self.body or "{}")
        except (TypeError, ValueError):
            params = None
        message = request_problem(self._get_action(), params) if isinstance(params, dict) else None
        if message is None:
            return original(self)
        status, headers, body = self.serialized(ActionResult(ValidationError(message)))
        headers["status"] = status
        status, headers, body = self._transform_response(self.response_headers, (body, headers))
        headers, body = self._enrich_response(headers, body)
        return status, headers, body

    _patching.replace(SageMakerResponse, "call_action", call_action, must_exist=False)


def tag_methods(resource_from_arn: Any) -> dict[str, Any]:
    """SageMakerModelBackend methods with AWS's tag behaviour, around moto's own ARN lookup (also used by
    the pipeline's unit tests, which run on plain moto)."""

    def _get_resource_from_arn(self: Any, arn: str) -> Any:
        if ":model-package/" in arn and arn.count("/") == 2:  # a package version: group/version
            return self.describe_model_package(arn)
        return resource_from_arn(self, arn)

    def add_tags(self: Any, arn: str, tags: list[dict[str, str]]) -> list[dict[str, str]]:
        resource = self._get_resource_from_arn(arn)
        values = {tag["Key"]: tag["Value"] for tag in (resource.tags or [])}
        values.update({tag["Key"]: tag["Value"] for tag in tags})
        resource.tags = [{"Key": key, "Value": value} for key, value in values.items()]
        return resource.tags

    return {"_get_resource_from_arn": _get_resource_from_arn, "add_tags": add_tags}


def _install_tags() -> None:
    from moto.sagemaker.models import SageMakerModelBackend

    _patching.original(SageMakerModelBackend, "add_tags")
    methods = tag_methods(_patching.original(SageMakerModelBackend, "_get_resource_from_arn"))
    for name, method in methods.items():
        _patching.replace(SageMakerModelBackend, name, method)


def install(state: Any) -> None:
    _install_validation()
    _install_tags()
