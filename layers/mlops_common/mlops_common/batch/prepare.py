"""Everything a batch needs before its transform job: the input snapshot, the model, the code, the requests.

- Inputs: the CSV objects of the batch, each at the version there when the batch started, copied to
  ``s3://<output>/batches/<dataset>/<batch>/input/``: the job reads exactly those bytes, whatever happens
  under inference/ afterwards, and nothing under inference/ is touched.
- Model: the model package the dataset's endpoint serves (its ``mlops:model-package-arn`` tag), else the
  dataset's latest Approved package (for example after the cost guard deleted an idle endpoint), else a
  refusal that says how to get one.
- Code: the package's serving code plus ``batch_inference.py`` (recipe/), uploaded by content hash, so any
  model trained by this stack answers every record, with an error marker for a record it cannot read.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import S3_MISSING_CODES, error_code
from mlops_common.batch import trigger
from mlops_common.pipeline import gate, naming, recipe_bundle
from mlops_common.pipeline.data_formats import READY_MARKERS

READY = "ready"
REFUSED = "refused"
BATCH_PROGRAM = "batch_inference.py"
BATCH_CODE_PREFIX = "code/batch"
CONTENT_TYPE = "text/csv"
# AWS's default and maximum mini-batch size is 6 MB (MaxPayloadInMB): fewer, larger requests.
MAX_PAYLOAD_MB = 6


class BatchRefused(Exception):
    """The batch cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class ModelChoice:
    package_arn: str
    source: str  # a sentence: where the model came from
    endpoint_name: str | None


@dataclass(frozen=True)
class Settings:
    stack_name: str
    input_bucket: str
    output_bucket: str
    models_bucket: str
    instance_type: str


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def batch_prefix(dataset: str, batch: str) -> str:
    return f"{naming.slug(dataset, 63)}/{batch}"


def find_model(sagemaker: Any, stack_name: str, dataset: str) -> ModelChoice:
    """The package the dataset's endpoint serves, else its latest Approved package; BatchRefused if none."""
    endpoint = naming.dataset_resource_name(stack_name, dataset)
    champion = gate.find_champion(sagemaker, endpoint)
    if champion is not None:
        return ModelChoice(champion.package_arn, f"the model endpoint {endpoint} serves", endpoint)
    group = endpoint  # the dataset's model package group has the endpoint's name (naming.py)
    try:
        packages = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",  # ascending by default
            MaxResults=1,
        )["ModelPackageSummaryList"]
    except ClientError as error:
        if error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        packages = []
    if not packages:
        raise BatchRefused(
            f"no model for dataset {dataset!r}: no endpoint {endpoint} serves one and model package group "
            f"{group} has no Approved package. Train one first (upload training/{dataset}/<data>.csv), or "
            "approve a pending package, then upload the batch again."
        )
    return ModelChoice(
        packages[0]["ModelPackageArn"],
        f"the latest Approved package of {group} (no endpoint {endpoint})",
        None,
    )


def model_container(sagemaker: Any, package_arn: str) -> dict[str, Any]:
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    containers = package.get("InferenceSpecification", {}).get("Containers") or []
    if not containers:
        raise BatchRefused(f"model package {package_arn} has no inference container")
    container: dict[str, Any] = containers[0]
    return container


def _read(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _untar(data: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix("./")] = extracted.read()
    return files


def batch_code(s3: Any, models_bucket: str, container: dict[str, Any], package_arn: str) -> dict[str, str]:
    """The transform model's Environment: the package's own code with batch_inference.py added (by hash)."""
    environment = dict(container.get("Environment") or {})
    submit = str(environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")).strip('"')
    program = str(environment.get("SAGEMAKER_PROGRAM", "inference.py")).strip('"')
    if not submit.startswith("s3://"):
        raise BatchRefused(
            f"model package {package_arn} has no SAGEMAKER_SUBMIT_DIRECTORY in S3: batch predictions need "
            "the serving code as a sourcedir.tar.gz (models this stack trains have it)"
        )
    files = _untar(_read(s3, submit))
    if program not in files:
        raise BatchRefused(f"the serving program {program} is not in {submit}")
    files[BATCH_PROGRAM] = (recipe_bundle.RECIPE_DIR / BATCH_PROGRAM).read_bytes()
    digest = recipe_bundle.content_hash(files)[:12]
    key = f"{BATCH_CODE_PREFIX}-{digest}/sourcedir.tar.gz"
    try:
        s3.head_object(Bucket=models_bucket, Key=key)
    except ClientError as error:
        if error_code(error) not in S3_MISSING_CODES:
            raise
        s3.put_object(Bucket=models_bucket, Key=key, Body=recipe_bundle.tarball(files))
    environment.update(
        {
            "SAGEMAKER_PROGRAM": BATCH_PROGRAM,
            "SAGEMAKER_SUBMIT_DIRECTORY": s3_uri(models_bucket, key),
            "MLOPS_SERVING_MODULE": PurePosixPath(program).stem,
        }
    )
    return environment


def batch_objects(s3: Any, bucket: str, execution_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch's objects (key, versionId, size): the triggering file, or every file of the folder."""
    prefix = execution_input["inputPrefix"]
    if execution_input["trigger"] == trigger.SINGLE_FILE:
        head = {"Bucket": bucket, "Key": prefix}
        if execution_input.get("versionId"):
            head["VersionId"] = execution_input["versionId"]
        described = s3.head_object(**head)
        return [{"key": prefix, "versionId": described.get("VersionId"), "size": described["ContentLength"]}]
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            name = PurePosixPath(version["Key"]).name
            if version["IsLatest"] and not version["Key"].endswith("/") and name not in READY_MARKERS:
                found.append(
                    {"key": version["Key"], "versionId": version["VersionId"], "size": version["Size"]}
                )
    return sorted(found, key=lambda o: o["key"])


def snapshot(
    s3: Any, settings: Settings, objects: list[dict[str, Any]], input_prefix: str, dest: str
) -> list[dict[str, Any]]:
    """Copy each object version to the batch's input prefix; [{key, versionId, size, copy}] in order."""
    base = input_prefix if input_prefix.endswith("/") else input_prefix.rsplit("/", 1)[0] + "/"
    copied = []
    for obj in objects:
        relative = obj["key"][len(base) :]
        source = {"Bucket": settings.input_bucket, "Key": obj["key"]}
        if obj.get("versionId") and obj["versionId"] != "null":
            source["VersionId"] = obj["versionId"]
        target = f"{dest}{relative}"
        s3.copy_object(Bucket=settings.output_bucket, Key=target, CopySource=source)
        copied.append({**obj, "relative": relative, "copy": target})
    return copied


def prepare(
    execution_input: dict[str, Any], settings: Settings, *, s3: Any, sagemaker: Any
) -> dict[str, Any]:
    """{status: ready, ...requests} or {status: refused, reason}; the execution input is the starter's."""
    dataset, batch = execution_input["dataset"], execution_input["batchId"]
    base = {"dataset": dataset, "batchId": batch, "inputPrefix": execution_input["inputPrefix"]}
    try:
        objects = batch_objects(s3, settings.input_bucket, execution_input)
        readable = [o for o in objects if PurePosixPath(o["key"]).suffix.lower() in trigger.BATCH_EXTENSIONS]
        skipped = [o["key"] for o in objects if o not in readable]
        if not readable:
            raise BatchRefused(
                f"no {', '.join(trigger.BATCH_EXTENSIONS)} file in {execution_input['inputPrefix']}"
                + (f" (skipped: {', '.join(skipped)})" if skipped else "")
            )
        choice = find_model(sagemaker, settings.stack_name, dataset)
        container = model_container(sagemaker, choice.package_arn)
        environment = batch_code(s3, settings.models_bucket, container, choice.package_arn)
    except BatchRefused as refused:
        return {**base, "status": REFUSED, "reason": str(refused)}
    prefix = batch_prefix(dataset, batch)
    snapshot_prefix = f"batches/{prefix}/input/"
    inputs = snapshot(s3, settings, readable, execution_input["inputPrefix"], snapshot_prefix)
    output_uri = s3_uri(settings.output_bucket, f"predictions/{prefix}/")
    tags = [
        {"Key": "mlops:dataset", "Value": naming.slug(dataset, 256)},
        {"Key": "mlops:batch", "Value": batch},
        {"Key": gate.PACKAGE_TAG, "Value": choice.package_arn},
    ]
    return {
        **base,
        "status": READY,
        "model": {
            "packageArn": choice.package_arn,
            "source": choice.source,
            "endpointName": choice.endpoint_name,
        },
        "inputs": inputs,
        "skipped": skipped,
        "outputBucket": settings.output_bucket,
        "outputUri": output_uri,
        # Job and model names: the state machine appends '-model-<uuid4 part>' / '-batch-<...>' (naming.py).
        "namePrefix": naming.run_prefix(settings.stack_name, dataset, f"batch/{batch}"),
        "container": {
            "Image": container["Image"],
            "ModelDataUrl": container["ModelDataUrl"],
            "Environment": environment,
        },
        "transform": {
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": s3_uri(settings.output_bucket, snapshot_prefix),
                    }
                },
                "ContentType": CONTENT_TYPE,
                "SplitType": "Line",
                "CompressionType": "None",
            },
            # Each output line is its input record followed by ',<prediction>' (JoinSource Input).
            "TransformOutput": {"S3OutputPath": output_uri, "Accept": CONTENT_TYPE, "AssembleWith": "Line"},
            "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "Input"},
            "TransformResources": {"InstanceType": settings.instance_type, "InstanceCount": 1},
        },
        "tags": tags,
    }
