"""Pipeline fixtures: an emulated account (moto) with the stack's buckets, topic and environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_common import aws

EVENTS = Path(__file__).resolve().parents[3] / "events"
STACK = "sagemaker-mlops"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
COORDINATION_TABLE = f"{STACK}-coordination"


@dataclass
class Stack:
    input_bucket: str
    output_bucket: str
    models_bucket: str
    topic_arn: str
    s3: Any
    sagemaker: Any
    sfn: Any
    sqs: Any
    sns: Any
    events: Any
    dynamodb: Any

    @property
    def ddb(self) -> Any:
        return self.dynamodb

    def put(self, key: str, body: bytes | str, bucket: str | None = None) -> dict[str, Any]:
        return self.s3.put_object(Bucket=bucket or self.input_bucket, Key=key, Body=body)

    def subscribe_queue(self, name: str = "notifications") -> str:
        """An SQS queue subscribed to the topic (raw delivery), to read what was notified."""
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)
        return url

    def capture_events(self, source: str, name: str = "events") -> str:
        """An SQS queue receiving every EventBridge event of the given source."""
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(Name=f"capture-{name}", EventPattern=json.dumps({"source": [source]}))
        self.events.put_targets(Rule=f"capture-{name}", Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def messages(self, url: str) -> list[dict[str, Any]]:
        found = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in found]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from moto.sagemaker.models import SageMakerModelBackend

    from offline.seams.sagemaker_requests import tag_methods

    # Tags as AWS keeps them (replace, and on package versions too): what the offline seams give the stack.
    for name, method in tag_methods(SageMakerModelBackend._get_resource_from_arn).items():
        monkeypatch.setattr(SageMakerModelBackend, name, method)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        # The layer caches one client per service: clear it so each test talks to its own emulator.
        aws.client.cache_clear()
        s3 = boto3.client("s3", region_name=REGION)
        names = {kind: f"{STACK}-{kind}-{ACCOUNT}" for kind in ("input", "output", "models")}
        for bucket in names.values():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name=f"{STACK}-topic")["TopicArn"]
        env = {
            "STACK_NAME": STACK,
            "INPUT_BUCKET": names["input"],
            "OUTPUT_BUCKET": names["output"],
            "MODELS_BUCKET": names["models"],
            "NOTIFICATION_TOPIC_ARN": topic_arn,
            "AWS_REGION": REGION,
            "PIPELINE_DEFAULTS": "",
            "COORDINATION_TABLE": COORDINATION_TABLE,
        }
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=COORDINATION_TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield Stack(
            input_bucket=names["input"],
            output_bucket=names["output"],
            models_bucket=names["models"],
            topic_arn=topic_arn,
            s3=s3,
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            sfn=boto3.client("stepfunctions", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
            sns=sns,
            events=boto3.client("events", region_name=REGION),
            dynamodb=dynamodb,
        )
        aws.client.cache_clear()


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


IRIS_CSV = "sepal,petal,label\n5.1,1.4,setosa\n6.2,4.5,versicolor\n"


def run_input(
    stack: Stack, dataset: str, trigger: str = "marker", run_id: str | None = None
) -> dict[str, Any]:
    """What start_run does when a run starts: list the dataset, write its manifest; returns the execution
    input (events/pipeline_execution_input.json's shape)."""
    from mlops_common.pipeline import naming, snapshot

    entries = snapshot.list_dataset(stack.s3, stack.input_bucket, dataset)
    content = snapshot.identity(entries, {})
    run_id = run_id or naming.execution_name(dataset, content)
    manifest = snapshot.build_manifest(
        run_id=run_id,
        dataset=dataset,
        bucket=stack.input_bucket,
        entries=entries,
        content_identity=content,
        defaults={},
        trigger=trigger,
        force=False,
    )
    uri = snapshot.write_manifest(stack.s3, stack.output_bucket, manifest)
    return {
        **load_event("pipeline_execution_input.json"),
        "runId": run_id,
        "dataset": dataset,
        "bucket": stack.input_bucket,
        "manifest": uri,
        "trigger": trigger,
    }


@pytest.fixture
def prepared_run(stack: Stack) -> dict[str, Any]:
    """A real prepare_run result for training/iris/iris.csv (what the state machine keeps at $.run)."""
    from mlops_common.pipeline import prepare

    stack.put("training/iris/iris.csv", IRIS_CSV)
    settings = prepare.Settings(STACK, REGION, stack.input_bucket, stack.output_bucket, stack.models_bucket)
    return prepare.prepare_run(
        run_input(stack, "iris"), settings, stack.s3, stack.sagemaker, recipe_files={"train.py": b"# x\n"}
    )


def write_uri(stack: Stack, uri: str, body: str) -> None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    stack.s3.put_object(Bucket=bucket, Key=key, Body=body)


def write_evaluation(stack: Stack, run: dict[str, Any], metrics: dict[str, float], problem: str) -> None:
    """What the evaluation job writes (the recipe's evaluation.json)."""
    evaluation = {"problem_type": problem, "metrics": metrics, "test_rows": 30, "class_labels": None}
    write_uri(stack, run["paths"]["evaluation"] + "evaluation.json", json.dumps(evaluation))


def serve_package(stack: Stack, endpoint: str, package_arn: str | None) -> str:
    """An InService endpoint, tagged with the package it serves (as the deploy machine leaves it)."""
    stack.sagemaker.create_model(
        ModelName=f"{endpoint}-model-0001",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"},
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-cfg-0001",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{endpoint}-model-0001",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    tags = [{"Key": "mlops:model-package-arn", "Value": package_arn}] if package_arn else []
    return stack.sagemaker.create_endpoint(
        EndpointName=endpoint, EndpointConfigName=f"{endpoint}-cfg-0001", Tags=tags
    )["EndpointArn"]
