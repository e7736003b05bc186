"""Seam: what moto's CloudFormation drops or misplaces for this stack's resource types.

Gaps filled (moto 5.2.5):
- `AWS::StepFunctions::StateMachine` is created in `stepfunctions_backends` even when the ASL interpreter is
  on, so the API (which then reads `stepfunctions_parser_backends`) answers StateMachineDoesNotExist: create,
  update and delete go to the backend the API uses (`moto.stepfunctions.responses.get_backend`).
- `DefinitionSubstitutions` are ignored: `${Name}` placeholders are replaced like CloudFormation does.
- `Definition` (a JSON object) and `DefinitionS3Location` are ignored: both are read into the definition
  string.
- `AWS::S3::Bucket` `NotificationConfiguration` is ignored: EventBridge, Lambda, SQS and SNS configurations
  are applied through the bucket's own notification setter. (`AWS::Lambda::Function` `Layers` are kept by the
  Lambda seam.)

moto internals touched: `moto.stepfunctions.models.StateMachine.create_from_cloudformation_json`,
`.update_from_cloudformation_json`, `.delete_from_cloudformation_json` (replaced);
`moto.s3.models.FakeBucket.create_from_cloudformation_json` (wrapped).
"""

from __future__ import annotations

import json
import re
from typing import Any

from offline.seams import _patching

_PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")


def substitute(definition: str, substitutions: dict[str, Any] | None) -> str:
    """Replace ${Key} with DefinitionSubstitutions[Key]; unknown keys stay (CloudFormation leaves them
    too)."""
    if not substitutions:
        return definition

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in substitutions:
            return match.group(0)
        replacement = substitutions[key]
        return replacement if isinstance(replacement, str) else json.dumps(replacement)

    return _PLACEHOLDER.sub(value, definition)


def definition_of(properties: dict[str, Any], account_id: str, region_name: str) -> str:
    definition = properties.get("DefinitionString")
    if isinstance(definition, dict):
        definition = json.dumps(definition)
    if definition is None and isinstance(properties.get("Definition"), dict):
        definition = json.dumps(properties["Definition"])
    if definition is None and properties.get("DefinitionS3Location"):
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        location = properties["DefinitionS3Location"]
        key = s3_backends[account_id][get_partition(region_name)].get_object(
            location["Bucket"], location["Key"], location.get("Version")
        )
        definition = key.value.decode("utf-8") if key else ""
    return substitute(definition or "", properties.get("DefinitionSubstitutions"))


def _sfn_backend(account_id: str, region_name: str) -> Any:
    from moto.stepfunctions.responses import get_backend

    return get_backend(account_id, region_name)


def install(state: Any) -> None:
    from moto.s3.models import FakeBucket
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.utils import cfn_to_api_tags

    for name in (
        "create_from_cloudformation_json",
        "update_from_cloudformation_json",
        "delete_from_cloudformation_json",
    ):
        _patching.original(StateMachine, name)

    def create(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        name = properties.get("StateMachineName", resource_name)
        return _sfn_backend(account_id, region_name).create_state_machine(
            name,
            definition_of(properties, account_id, region_name),
            properties.get("RoleArn", ""),
            tags=cfn_to_api_tags(properties.get("Tags", [])),
            sm_type=properties.get("StateMachineType", "STANDARD"),
        )

    def delete(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        _sfn_backend(account_id, region_name).delete_state_machine(resource_name)

    def update(  # noqa: PLR0917 - moto's signature
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        name = properties.get("StateMachineName", original_resource.name)
        if name != original_resource.name:
            new = create(cls, name, cloudformation_json, account_id, region_name)
            delete(cls, original_resource.arn, cloudformation_json, account_id, region_name)
            return new
        backend = _sfn_backend(account_id, region_name)
        machine = backend.update_state_machine(
            original_resource.arn,
            definition=definition_of(properties, account_id, region_name),
            role_arn=properties.get("RoleArn"),
        )
        backend.tagger.tag_resource(machine.arn, cfn_to_api_tags(properties.get("Tags", [])))
        return machine

    _patching.replace(StateMachine, "create_from_cloudformation_json", classmethod(create))
    _patching.replace(StateMachine, "delete_from_cloudformation_json", classmethod(delete))
    _patching.replace(StateMachine, "update_from_cloudformation_json", classmethod(update))

    bucket_create = _patching.original(FakeBucket, "create_from_cloudformation_json").__func__

    def create_bucket(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        bucket = bucket_create(cls, resource_name, cloudformation_json, account_id, region_name, **kw)
        notification = cloudformation_json.get("Properties", {}).get("NotificationConfiguration")
        if notification:
            bucket.set_notification_configuration(bucket_notification(notification))
        return bucket

    _patching.replace(FakeBucket, "create_from_cloudformation_json", classmethod(create_bucket))


def _filter(cfn_filter: dict[str, Any] | None) -> dict[str, Any] | None:
    if not cfn_filter:
        return None
    rules = cfn_filter.get("S3Key", {}).get("Rules", [])
    return {"S3Key": {"FilterRule": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}


def bucket_notification(cfn: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration -> the shape moto's
    FakeBucket.set_notification_configuration takes."""
    config: dict[str, Any] = {}
    bridge = cfn.get("EventBridgeConfiguration", {})
    if str(bridge.get("EventBridgeEnabled", "")).lower() == "true":
        config["EventBridgeConfiguration"] = {}
    for cfn_key, key, target in (
        ("LambdaConfigurations", "CloudFunctionConfiguration", ("Function", "CloudFunction")),
        ("QueueConfigurations", "QueueConfiguration", ("Queue", "Queue")),
        ("TopicConfigurations", "TopicConfiguration", ("Topic", "Topic")),
    ):
        items = []
        for item in cfn.get(cfn_key, []):
            entry: dict[str, Any] = {target[1]: item[target[0]], "Event": [item["Event"]]}
            if _filter(item.get("Filter")):
                entry["Filter"] = _filter(item.get("Filter"))
            items.append(entry)
        if items:
            config[key] = items
    return config
