"""Deploy the `sam build` output into an (emulated) AWS the way `sam package` + `sam deploy` do.

Steps: zip each built function/layer folder and upload it (and each state machine definition) to an artifacts
bucket, point CodeUri/ContentUri/DefinitionUri at those S3 objects, run the SAM transform offline, create the
CloudFormation stack. What moto's CloudFormation drops (Layers, DefinitionSubstitutions, S3 notifications) is
restored by offline.seams.cloudformation and offline.seams.lambda_invoke; bucket versioning and lists holding
`Fn::If ... AWS::NoValue` are handled here (see apply_bucket_versioning, drop_no_value_items). Nothing here is
specific to this project's resources: a change to template.yaml shows up offline after `sam build` with no
second edit.

Only public AWS APIs are called (through `clients`), so the same code deploys into the in-process moto of
`offline.embedded` and into the `make local-up` server.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from offline import ACCOUNT_ID, DEFAULT_STACK_NAME, OFFLINE_PARAMETER_DEFAULTS, REGION, ROOT, STATE_DIR

# OFFLINE_BUILD_DIR: deploy another `sam build --build-dir` output (the e2e tests and the CLI honour it).
DEFAULT_BUILD_DIR = Path(os.environ.get("OFFLINE_BUILD_DIR") or ROOT / ".aws-sam" / "build")
ZIP_CACHE_DIR = STATE_DIR / "artifacts"

# max: 20 + 12 = 32 characters, a fixed name so reruns against a live server reuse it.
ARTIFACTS_BUCKET = f"mlops-offline-assets-{ACCOUNT_ID}"

ClientFactory = Callable[[str], Any]

# What CloudFormation accepts on create_stack for a SAM app that creates IAM roles.
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class DeployError(RuntimeError):
    """The stack could not be deployed; the message says which resource or file and what to do."""


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


class OfflinePolicyLoader(ManagedPolicyLoader):
    """The translator's documented policy loader, answered from the map bundled with aws-sam-translator.

    The translator looks names up in that bundled map first and calls the loader only for names it lacks;
    offline there is no IAM to list managed policies from, so unknown names stay as written (its fallback).
    """

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        return dict(get_bundled_managed_policy_map("aws") or {})


def load_template(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DeployError(f"{path} not found: run `make build` (sam build) first.")
    template = yaml_parse(path.read_text(encoding="utf-8"))
    if not isinstance(template, dict) or "Resources" not in template:
        raise DeployError(f"{path} is not a CloudFormation/SAM template (no Resources section).")
    return template


# ---------------------------------------------------------------- packaging (what `sam package` does)


def _tree_fingerprint(folder: Path) -> str:
    """Cheap identity of a folder's content (paths, sizes, mtimes): is a cached zip still valid?"""
    digest = hashlib.sha256()
    for path in sorted(_files(folder)):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            yield Path(root) / name


def zip_folder(folder: Path, cache_dir: Path | None = ZIP_CACHE_DIR) -> bytes:
    """A deterministic zip of a folder (files at the root), reused from cache_dir while it is unchanged."""
    cached = cache_dir / f"{_tree_fingerprint(folder)}.zip" if cache_dir else None
    if cached and cached.is_file():
        cached.touch()  # recently used: kept by prune_zip_cache
        return cached.read_bytes()
    buffer = io.BytesIO()
    # Level 1: the layer holds ~37 MB of packages; the upload stays in memory, so speed beats size.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(_files(folder)):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=1)
    data = buffer.getvalue()
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(cached)
    return data


def prune_zip_cache(cache_dir: Path | None, max_age_seconds: float = 86_400) -> None:
    """Every `sam build` makes new zips; drop the ones no deploy has used for a day."""
    if not cache_dir or not cache_dir.is_dir():
        return
    cutoff = time.time() - max_age_seconds
    for path in cache_dir.glob("*.zip"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def _upload(s3: Any, bucket: str, data: bytes, suffix: str) -> str:
    key = f"{hashlib.sha256(data).hexdigest()}{suffix}"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return key


def _local_path(build_dir: Path, uri: Any, what: str) -> Path | None:
    """The local file/folder a *Uri property names, or None when it points elsewhere (S3, intrinsic)."""
    if not isinstance(uri, str) or uri.startswith("s3://"):
        return None
    path = (build_dir / uri).resolve()
    if not path.exists():
        raise DeployError(
            f"{what} points at {path}, which does not exist: run `make build` (sam build) again."
        )
    return path


def package(
    template: dict[str, Any],
    build_dir: Path,
    s3: Any,
    bucket: str = ARTIFACTS_BUCKET,
    cache_dir: Path | None = ZIP_CACHE_DIR,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Upload local code/definitions and return (the template pointing at S3, logical id -> local folder)."""
    packaged = copy.deepcopy(template)
    local_dirs: dict[str, Path] = {}
    for logical_id, resource in packaged["Resources"].items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function" and props.get("PackageType", "Zip") == "Zip":
            prop = "CodeUri"
        elif kind == "AWS::Serverless::LayerVersion":
            prop = "ContentUri"
        elif kind == "AWS::Serverless::StateMachine":
            prop = "DefinitionUri"
        else:
            continue
        path = _local_path(build_dir, props.get(prop), f"{logical_id}.{prop}")
        if path is None:
            continue
        if path.is_dir():
            local_dirs[logical_id] = path
            key = _upload(s3, bucket, zip_folder(path, cache_dir), ".zip")
        else:
            key = _upload(s3, bucket, path.read_bytes(), path.suffix)
        props[prop] = f"s3://{bucket}/{key}"
    prune_zip_cache(cache_dir)
    return packaged, local_dirs


# ---------------------------------------------------------------- transform and CloudFormation fix-ups


def sam_transform(template: dict[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """The SAM transform, run here instead of by CloudFormation (moto's CloudFormation has no SAM macro)."""
    values: dict[str, Any] = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
    values.update(parameters)
    try:
        return transform(copy.deepcopy(template), values, OfflinePolicyLoader())
    except InvalidDocumentException as error:
        causes = "; ".join(cause.message for cause in error.causes)
        raise DeployError(f"the SAM transform rejected the template: {causes}") from error


def _evaluate(expr: Any, conditions: Mapping[str, Any], params: Mapping[str, Any]) -> Any:  # noqa: PLR0911
    """Just enough of CloudFormation's condition functions to tell which resources a stack would create."""
    if isinstance(expr, dict) and len(expr) == 1:
        (name, arg), *_ = expr.items()
        if name == "Ref":
            return params.get(arg, arg)
        if name == "Condition":
            return bool(_evaluate(conditions[arg], conditions, params))
        if name == "Fn::Equals":
            left, right = (_evaluate(a, conditions, params) for a in arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not _evaluate(arg[0], conditions, params)
        if name == "Fn::And":
            return all(_evaluate(a, conditions, params) for a in arg)
        if name == "Fn::Or":
            return any(_evaluate(a, conditions, params) for a in arg)
        if name == "Fn::Join":
            separator, items = arg
            values = _evaluate(items, conditions, params)
            return separator.join(values if isinstance(values, list) else [str(values)])
    if isinstance(expr, list):
        return [_evaluate(item, conditions, params) for item in expr]
    return expr


def active_resources(
    template: dict[str, Any], parameters: Mapping[str, Any], section: str = "Resources"
) -> dict[str, dict[str, Any]]:
    """The resources (or outputs) whose Condition, if any, holds for these parameter values."""
    params = _parameter_values(template, parameters)
    conditions = template.get("Conditions", {})
    return {
        logical_id: entry
        for logical_id, entry in template.get(section, {}).items()
        if "Condition" not in entry or _evaluate({"Condition": entry["Condition"]}, conditions, params)
    }


def _parameter_values(template: dict[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()}
    values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"})
    values.update(parameters)
    return values


def _is_no_value(value: Any) -> bool:
    return value == {"Ref": "AWS::NoValue"}


def drop_no_value_items(template: dict[str, Any], parameters: Mapping[str, Any]) -> None:
    """Remove list items that are `Fn::If` choosing AWS::NoValue, as CloudFormation does.

    moto's CloudFormation turns them into None and keeps them, then fails on e.g. a role's `Policies`
    (`'NoneType' object is not subscriptable`). In a dict moto already drops the key, so only lists need this.
    """
    values = _parameter_values(template, parameters)
    conditions = template.get("Conditions", {})

    def chosen(item: Any) -> Any:
        while isinstance(item, dict) and set(item) == {"Fn::If"}:
            name, when_true, when_false = item["Fn::If"]
            item = when_true if _evaluate({"Condition": name}, conditions, values) else when_false
        return item

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node if not _is_no_value(chosen(item))]
        if isinstance(node, dict) and set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]  # its arguments are not a list of items
            return {"Fn::If": [name, walk(when_true), walk(when_false)]}
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    template["Resources"] = walk(template["Resources"])
    if "Outputs" in template:
        template["Outputs"] = walk(template["Outputs"])


def _references(value: Any) -> Iterator[str]:
    """Logical ids a property value refers to (Ref, Fn::GetAtt, ${X} and ${X.Attr} in Fn::Sub)."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield (arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for name in _sub_names(text):
                    yield name.split(".", 1)[0]
                if isinstance(arg, list):
                    yield from _references(arg[1])
            else:
                yield from _references(arg)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _sub_names(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            return
        name = text[start + 2 : end]
        if not name.startswith("!"):
            yield name
        start = text.find("${", end)


def moto_unsupported(resources: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """logical id -> type of the resources moto's CloudFormation skips (it only logs a warning)."""
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    known = get_model_map()
    return {
        logical_id: resource["Type"]
        for logical_id, resource in resources.items()
        if resource["Type"] not in known
        and resource["Type"] not in NULL_MODELS
        and not resource["Type"].startswith("Custom::")
    }


# Where a reference to a resource that was never created breaks the running system, not just its inventory:
# a function would read an empty environment variable, a state machine would call a "${Name}" placeholder.
_RUNTIME_REFERENCES = {
    "AWS::Lambda::Function": "Environment",
    "AWS::StepFunctions::StateMachine": "DefinitionSubstitutions",
}


def needed_but_not_created(template: dict[str, Any], parameters: Mapping[str, Any]) -> list[str]:
    """'<Referrer>.<Property> -> <Missing> (<Type>)' for each runtime reference to a resource moto skips."""
    resources = active_resources(template, parameters)
    missing = moto_unsupported(resources)
    problems = []
    for logical_id, resource in sorted(resources.items()):
        prop = _RUNTIME_REFERENCES.get(resource["Type"])
        if prop is None:
            continue
        for name in sorted(set(_references(resource.get("Properties", {}).get(prop, {})))):
            if name in missing:
                problems.append(f"{logical_id}.{prop} -> {name} ({missing[name]})")
    return problems


def describe_not_created(template: dict[str, Any], parameters: Mapping[str, Any]) -> list[str]:
    resources = active_resources(template, parameters)
    missing = moto_unsupported(resources)
    lines = []
    for logical_id, kind in sorted(missing.items()):
        users = sorted(
            other
            for other, resource in resources.items()
            if other not in missing and logical_id in set(_references(resource.get("Properties", {})))
        )
        used = f"; referenced by {', '.join(users)} (those references resolve to nothing)" if users else ""
        lines.append(f"{logical_id} ({kind}){used}")
    return lines


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
