"""Deploy the `sam build` output into an (emulated) AWS the way `sam package` + `sam deploy` do.

Steps: package the built folders (offline.packaging), run the SAM transform offline and drop what moto's
CloudFormation mishandles (offline.sam_template), create the CloudFormation stack, then report what the
harness and the seams need (outputs, physical ids, where each function's code lives). What moto's
CloudFormation drops (Layers, DefinitionSubstitutions, S3 notifications) is restored by
offline.seams.cloudformation and offline.seams.lambda_invoke; bucket versioning is applied here
(apply_bucket_versioning). Nothing here is specific to this project's resources: a change to template.yaml
shows up offline after `sam build` with no second edit.

Only public AWS APIs are called (through `clients`), so the same code deploys into the in-process moto of
`offline.embedded` and into the `make local-up` server.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from offline import DEFAULT_STACK_NAME, OFFLINE_PARAMETER_DEFAULTS, ROOT, DeployError
from offline.packaging import ARTIFACTS_BUCKET, ZIP_CACHE_DIR, package
from offline.sam_template import (
    describe_not_created,
    drop_no_value_items,
    load_template,
    needed_but_not_created,
    sam_transform,
)

# OFFLINE_BUILD_DIR: deploy another `sam build --build-dir` output (the e2e tests and the CLI honour it).
DEFAULT_BUILD_DIR = Path(os.environ.get("OFFLINE_BUILD_DIR") or ROOT / ".aws-sam" / "build")

ClientFactory = Callable[[str], Any]

# What CloudFormation accepts on create_stack for a SAM app that creates IAM roles.
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


@dataclass(frozen=True)
class FunctionCode:
    """Where a deployed function's code lives on this machine (for the in-process invoke seam)."""

    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    layer_dirs: tuple[Path, ...]
    environment: Mapping[str, str]


@dataclass
class Deployment:
    stack_name: str
    stack_id: str
    outputs: dict[str, str]
    # logical id -> physical id, as list_stack_resources reports them
    resources: dict[str, str]
    functions: dict[str, FunctionCode]
    # "LogicalId (Type)" of resources moto's CloudFormation does not create, with who references them
    not_created: list[str] = field(default_factory=list)
    template: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- deploy


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)


def _stack_parameters(
    template: dict[str, Any], stack_name: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    declared = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise DeployError(
            f"unknown template parameter(s) {unknown}; the template declares {sorted(declared)}"
        )
    values = {}
    if "StackName" in declared:
        # The template asserts StackName == AWS::StackName (a Rule moto does not evaluate).
        values["StackName"] = stack_name
    values.update({name: value for name, value in OFFLINE_PARAMETER_DEFAULTS.items() if name in declared})
    values.update(overrides)
    return values


def _physical_ids(cloudformation: Any, stack_name: str) -> dict[str, str]:
    paginator = cloudformation.get_paginator("list_stack_resources")
    return {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in paginator.paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
        if summary.get("LogicalResourceId")  # moto lists skipped (unsupported) resources with an empty id
    }


def _function_layers(template: dict[str, Any]) -> dict[str, list[str]]:
    """Function logical id -> the logical ids of its layers (Globals already merged by the transform)."""
    return {
        logical_id: [
            ref["Ref"]
            for ref in resource.get("Properties", {}).get("Layers", [])
            if isinstance(ref, dict) and "Ref" in ref
        ]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def apply_bucket_versioning(s3: Any, template: dict[str, Any], physical: Mapping[str, str]) -> list[str]:
    """Turn on the versioning the template asks for; moto's CloudFormation drops VersioningConfiguration.

    Without it every upload of a key has the version id None, so a re-upload looks like the same dataset
    version. Returns the buckets it changed.
    """
    changed = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::S3::Bucket" or logical_id not in physical:
            continue
        status = resource.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
        if status in ("Enabled", "Suspended"):
            bucket = physical[logical_id]
            if s3.get_bucket_versioning(Bucket=bucket).get("Status") != status:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
                changed.append(bucket)
    return changed


def _function_codes(
    clients: ClientFactory,
    template: dict[str, Any],
    physical: Mapping[str, str],
    local_dirs: Mapping[str, Path],
    function_layers: Mapping[str, list[str]],
) -> dict[str, FunctionCode]:
    """Physical function name -> its local code, layers and (moto-resolved) environment."""
    lambda_client = clients("lambda")
    codes: dict[str, FunctionCode] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function" or logical_id not in physical:
            continue
        # The transform renames nothing for functions: the SAM logical id is the Lambda logical id.
        if logical_id not in local_dirs:
            continue
        name = physical[logical_id]
        config = lambda_client.get_function_configuration(FunctionName=name)
        codes[name] = FunctionCode(
            logical_id=logical_id,
            function_name=name,
            code_dir=local_dirs[logical_id],
            handler=config.get("Handler", ""),
            layer_dirs=tuple(
                local_dirs[layer] for layer in function_layers.get(logical_id, []) if layer in local_dirs
            ),
            environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
        )
    return codes


def _layer_local_dirs(sam_template: dict[str, Any], cfn: dict[str, Any], local_dirs: dict[str, Path]) -> None:
    """The transform renames layers (CommonLayer -> CommonLayer<hash>): map the new ids to their folders."""
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::Lambda::LayerVersion" or logical_id in local_dirs:
            continue
        for sam_id in sam_template["Resources"]:
            if logical_id.startswith(sam_id) and sam_id in local_dirs:
                local_dirs[logical_id] = local_dirs[sam_id]


def stack_failure(cloudformation: Any, stack_name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    reasons = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', event['ResourceStatus'])}"
        for event in events
        if event["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(reasons) or "no failure event recorded"


@contextmanager
def _quiet_moto() -> Iterator[None]:
    """moto warns per skipped resource and reference; `Deployment.not_created` reports them once instead."""
    logger = logging.getLogger("moto")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def deploy(
    clients: ClientFactory,
    build_dir: Path = DEFAULT_BUILD_DIR,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    cache_dir: Path | None = ZIP_CACHE_DIR,
) -> Deployment:
    """Package, transform and create the stack; return what the harness and the seams need to know."""
    sam_template = load_template(build_dir / "template.yaml")
    values = _stack_parameters(sam_template, stack_name, parameters or {})

    s3 = clients("s3")
    ensure_bucket(s3, ARTIFACTS_BUCKET)
    packaged, local_dirs = package(sam_template, build_dir, s3, ARTIFACTS_BUCKET, cache_dir)
    cfn = sam_transform(packaged, values)
    drop_no_value_items(cfn, values)
    needed = needed_but_not_created(cfn, values)
    if needed:
        raise DeployError(
            "moto's CloudFormation cannot create resources the running stack reads: "
            + "; ".join(needed)
            + ". Add a seam for that resource type in offline/seams/ (see its README) or avoid the reference."
        )
    _layer_local_dirs(sam_template, cfn, local_dirs)

    with _quiet_moto():
        return _create_stack(clients, cfn, stack_name, values, local_dirs)


def _create_stack(
    clients: ClientFactory,
    cfn: dict[str, Any],
    stack_name: str,
    values: Mapping[str, str],
    local_dirs: Mapping[str, Path],
) -> Deployment:
    cloudformation = clients("cloudformation")
    try:
        response = cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(cfn),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()],
            Capabilities=_CAPABILITIES,
        )
    except cloudformation.exceptions.AlreadyExistsException as error:
        raise DeployError(
            f"stack {stack_name} already exists here: run `make local-down` first or pick another stack name"
        ) from error
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise DeployError(
            f"stack {stack_name} ended {stack['StackStatus']}: {stack_failure(cloudformation, stack_name)}"
        )

    physical = _physical_ids(cloudformation, stack_name)
    apply_bucket_versioning(clients("s3"), cfn, physical)
    function_layers = _function_layers(cfn)
    return Deployment(
        stack_name=stack_name,
        stack_id=response["StackId"],
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        resources=physical,
        functions=_function_codes(clients, cfn, physical, local_dirs, function_layers),
        not_created=describe_not_created(cfn, values),
        template=cfn,
    )
