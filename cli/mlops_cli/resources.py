"""The stack's SageMaker resources: endpoints and the package each serves, model packages, notebooks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_cli.context import Aws
from mlops_cli.errors import CliError
from mlops_cli.output import iso

# Tags and package properties written by the pipeline (mlops_common.pipeline.deploy / registry).
STACK_TAG = "mlops:stack"
PACKAGE_TAG = "mlops:model-package-arn"
STAGE_TAG = "mlops:stage"
STACK_PROPERTY = "stack"
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"


def _not_found(error: Exception) -> bool:
    text = str(error)
    return "Could not find" in text or "does not exist" in text or "ResourceNotFound" in text


# ---------------------------------------------------------------- endpoints


@dataclass
class Endpoint:
    name: str
    status: str
    package_arn: str | None
    config: str | None
    created: datetime | None
    modified: datetime | None
    failure: str | None = None
    # The stage it serves (Stages=staging-prod: "staging" or "prod", docs/stages.md); None with one stage.
    stage: str | None = None

    @property
    def package_version(self) -> str | None:
        return self.package_arn.rsplit("/", 1)[-1] if self.package_arn else None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpointName": self.name,
            "status": self.status,
            "modelPackageArn": self.package_arn,
            "modelPackageVersion": int(self.package_version)
            if (self.package_version or "").isdigit()
            else None,
            "endpointConfigName": self.config,
            "createdAt": iso(self.created),
            "modifiedAt": iso(self.modified),
            "failureReason": self.failure,
            "stage": self.stage,
        }


def _tags(aws: Aws, arn: str) -> dict[str, str]:
    pages = aws.client("sagemaker").get_paginator("list_tags").paginate(ResourceArn=arn)
    return {t["Key"]: t["Value"] for page in pages for t in page.get("Tags", [])}


def stack_endpoints(aws: Aws) -> list[Endpoint]:
    """Endpoints the pipeline deployed for this stack: named '<stack>-<dataset>' and tagged with the stack."""
    sagemaker = aws.client("sagemaker")
    prefix = f"{aws.target.stack}-"
    found = []
    pages = sagemaker.get_paginator("list_endpoints").paginate(NameContains=aws.target.stack)
    for summary in (s for page in pages for s in page["Endpoints"]):
        if not summary["EndpointName"].startswith(prefix):
            continue
        tags = _tags(aws, summary["EndpointArn"])
        if tags.get(STACK_TAG, aws.target.stack) != aws.target.stack:
            continue
        found.append(_endpoint(aws, summary["EndpointName"], tags))
    return sorted(found, key=lambda e: e.name)


def _endpoint(aws: Aws, name: str, tags: dict[str, str] | None = None) -> Endpoint:
    described = aws.client("sagemaker").describe_endpoint(EndpointName=name)
    if tags is None:
        tags = _tags(aws, described["EndpointArn"])
    return Endpoint(
        name=name,
        status=described["EndpointStatus"],
        package_arn=tags.get(PACKAGE_TAG),
        config=described.get("EndpointConfigName"),
        created=described.get("CreationTime"),
        modified=described.get("LastModifiedTime"),
        failure=described.get("FailureReason"),
        stage=tags.get(STAGE_TAG),
    )


def get_endpoint(aws: Aws, name: str) -> Endpoint:
    from botocore.exceptions import ClientError

    try:
        return _endpoint(aws, name)
    except ClientError as error:
        if _not_found(error) or "ValidationException" in str(error):
            known = ", ".join(e.name for e in stack_endpoints(aws)) or "none"
            raise CliError(
                f"no endpoint {name!r} (endpoints of stack {aws.target.stack}: {known})"
            ) from error
        raise


def invoke(aws: Aws, endpoint: str, body: bytes, content_type: str) -> Any:
    from botocore.exceptions import ClientError

    get_endpoint(aws, endpoint)  # a clear error for an unknown name before the runtime's
    try:
        response = aws.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, ContentType=content_type, Accept="application/json", Body=body
        )
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        raise CliError(f"endpoint {endpoint} refused the request: {message}") from error
    raw = response["Body"].read()
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- model packages


@dataclass
class Package:
    arn: str
    group: str
    version: int | None
    status: str
    created: datetime | None
    properties: dict[str, str]
    description: str | None = None

    @property
    def dataset(self) -> str | None:
        return self.properties.get("dataset")

    @property
    def metrics(self) -> dict[str, float]:
        out = {}
        for key, value in self.properties.items():
            if key.startswith("metric:"):
                try:
                    out[key.removeprefix("metric:")] = float(value)
                except ValueError:
                    continue
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "modelPackageArn": self.arn,
            "modelPackageGroup": self.group,
            "version": self.version,
            "approvalStatus": self.status,
            "dataset": self.dataset,
            "runId": self.properties.get("run-id"),
            "endpointName": self.properties.get("endpoint-name"),
            "metrics": self.metrics,
            "createdAt": iso(self.created),
        }


def _package(described: dict[str, Any]) -> Package:
    return Package(
        arn=described["ModelPackageArn"],
        group=described.get("ModelPackageGroupName", ""),
        version=described.get("ModelPackageVersion"),
        status=described.get("ModelApprovalStatus", ""),
        created=described.get("CreationTime"),
        properties=dict(described.get("CustomerMetadataProperties") or {}),
        description=described.get("ModelPackageDescription"),
    )


def stack_groups(aws: Aws) -> list[str]:
    pages = (
        aws.client("sagemaker")
        .get_paginator("list_model_package_groups")
        .paginate(NameContains=aws.target.stack)
    )
    prefix = f"{aws.target.stack}-"
    return sorted(
        g["ModelPackageGroupName"]
        for page in pages
        for g in page["ModelPackageGroupSummaryList"]
        if g["ModelPackageGroupName"].startswith(prefix)
    )


def packages(aws: Aws, group: str, status: str | None = None) -> list[Package]:
    """The stack's packages of one group, newest first (the 'stack' property tells whose they are)."""
    sagemaker = aws.client("sagemaker")
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    if status:
        kwargs["ModelApprovalStatus"] = status
    found = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(**kwargs):
        for summary in page["ModelPackageSummaryList"]:
            package = _package(sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"]))
            if package.properties.get(STACK_PROPERTY, aws.target.stack) == aws.target.stack:
                found.append(package)
    return found


def pending_packages(aws: Aws) -> list[Package]:
    return [p for group in stack_groups(aws) for p in packages(aws, group, PENDING)]


def dataset_group(aws: Aws, dataset: str) -> str:
    """The model package group of a dataset ('<stack>-<dataset>'), or an error listing the known ones."""
    groups = stack_groups(aws)
    for group in groups:
        if group in (f"{aws.target.stack}-{dataset}", dataset):
            return group
    for group in groups:
        newest = packages(aws, group)
        if newest and newest[0].dataset == dataset:
            return group
    known = ", ".join(g.removeprefix(f"{aws.target.stack}-") for g in groups) or "none"
    raise CliError(
        f"no model packages for dataset {dataset!r} in stack {aws.target.stack} (datasets: {known})"
    )


def resolve_package(aws: Aws, ref: str, status: str | None = PENDING) -> Package:
    """A package by ARN, or a dataset's newest package in `status` (for approve/reject)."""
    from botocore.exceptions import ClientError

    if ref.startswith("arn:"):
        try:
            return _package(aws.client("sagemaker").describe_model_package(ModelPackageName=ref))
        except ClientError as error:
            raise CliError(f"no model package {ref}: copy an ARN from `mlops status`") from error
    group = dataset_group(aws, ref)
    found = packages(aws, group, status)
    if not found:
        what = f"{status} " if status else ""
        raise CliError(f"dataset {ref} has no {what}model package (see `mlops status`)")
    return found[0]


def set_approval(aws: Aws, package: Package, status: str, description: str | None) -> Package:
    kwargs: dict[str, Any] = {"ModelPackageArn": package.arn, "ModelApprovalStatus": status}
    if description:
        kwargs["ApprovalDescription"] = description[:1024]  # the API's limit
    aws.client("sagemaker").update_model_package(**kwargs)
    return _package(aws.client("sagemaker").describe_model_package(ModelPackageName=package.arn))


# ---------------------------------------------------------------- notebooks


@dataclass
class Notebook:
    name: str
    status: str
    instance_type: str | None
    url: str | None
    last_activity: datetime | None
    modified: datetime | None

    def idle_minutes(self, now: datetime) -> float | None:
        reference = self.last_activity or (self.modified if self.status == "InService" else None)
        if reference is None or self.status != "InService":
            return None
        return max(0.0, (now - reference).total_seconds() / 60)

    def to_json(self, now: datetime) -> dict[str, Any]:
        idle = self.idle_minutes(now)
        return {
            "notebookInstanceName": self.name,
            "status": self.status,
            "instanceType": self.instance_type,
            "url": self.url,
            "lastActivityAt": iso(self.last_activity),
            "idleMinutes": round(idle, 1) if idle is not None else None,
        }


def notebooks(aws: Aws) -> list[Notebook]:
    """The stack's notebook (its output) plus any notebook the cost guard's scope covers in the account."""
    sagemaker = aws.client("sagemaker")
    summaries = [
        s
        for page in sagemaker.get_paginator("list_notebook_instances").paginate()
        for s in page["NotebookInstances"]
    ]
    found = [
        Notebook(
            name=s["NotebookInstanceName"],
            status=s["NotebookInstanceStatus"],
            instance_type=s.get("InstanceType"),
            url=s.get("Url"),
            last_activity=None,
            modified=s.get("LastModifiedTime"),
        )
        for s in summaries
    ]
    _attach_heartbeats(aws, found)
    return sorted(found, key=lambda n: n.name)


def _attach_heartbeats(aws: Aws, found: list[Notebook]) -> None:
    """The newest heartbeat of each notebook (the lifecycle script's idle-seconds metric), if any."""
    from mlops_common.cost_guard.notebooks import read_heartbeats

    if not found:
        return
    beats = read_heartbeats(aws.client("cloudwatch"), [n.name for n in found], datetime.now(UTC))
    for notebook_ in found:
        beat = beats.get(notebook_.name)
        if beat is not None:
            notebook_.last_activity = beat.at - timedelta(seconds=beat.idle_seconds)


def notebook(aws: Aws, name: str | None) -> str:
    """The notebook's name: the one given, or the stack's own (NotebookInstanceName output)."""
    if name:
        return name
    own = aws.outputs.get("NotebookInstanceName")
    if not own:
        raise CliError(
            f"stack {aws.target.stack} has no notebook (CreateNotebook=false): name one from "
            "`mlops notebooks list`"
        )
    return own


def describe_notebook(aws: Aws, name: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return dict(aws.client("sagemaker").describe_notebook_instance(NotebookInstanceName=name))
    except ClientError as error:
        if _not_found(error) or "ValidationException" in str(error):
            known = ", ".join(n.name for n in notebooks(aws)) or "none"
            raise CliError(f"no notebook instance {name!r} (notebooks: {known})") from error
        raise


def dataset_of(package: Package, fallback: str) -> str:
    return package.dataset or fallback
