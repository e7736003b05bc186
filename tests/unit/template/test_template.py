"""What every deployment of template.yaml must guarantee, checked on the transformed CloudFormation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.template.conftest import ACCOUNT, STACK

BUCKETS = {"InputBucket": "input", "OutputBucket": "output", "ModelsBucket": "models"}
REQUIRED_OUTPUTS = {
    "InputBucketName",
    "OutputBucketName",
    "ModelsBucketName",
    "NotificationTopicArn",
    "SageMakerExecutionRoleArn",
}
NOTEBOOK_TYPES = {
    "AWS::SageMaker::NotebookInstance",
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::RouteTable",
}


def resolve_sub(value: Any, params: dict[str, Any]) -> str:
    """Resolve an Fn::Sub over parameters and pseudo parameters (enough for names)."""
    template = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(params[m.group(1)]), template)


def iam_statements(resources: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement in roles and policies (bucket policies are resource policies)."""
    found = []
    for logical_id, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in _flatten_ifs(props.get("Policies", []), "PolicyDocument")]
        elif res["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            docs = [props["PolicyDocument"]]
        else:
            continue
        for doc in docs:
            for statement in _flatten_ifs(doc["Statement"], "Effect"):
                found.append((logical_id, statement))
    return found


def _flatten_ifs(items: list[Any], key: str) -> list[dict[str, Any]]:
    """Both branches of every Fn::If that holds an item (a statement, a policy) with `key`."""
    flat = []
    for item in items:
        if isinstance(item, dict) and "Fn::If" in item:
            flat.extend(branch for branch in item["Fn::If"][1:] if isinstance(branch, dict) and key in branch)
        else:
            flat.append(item)
    return flat


def test_every_bucket_is_encrypted_versioned_private_and_tls_only(deploy):
    stack = deploy()
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in stack.of_type("AWS::S3::BucketPolicy").values()
    }
    buckets = stack.of_type("AWS::S3::Bucket")
    assert set(BUCKETS) <= set(buckets)
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        assert algorithm["Fn::If"][1:] == ["aws:kms", "AES256"], logical_id
        assert all(props["PublicAccessBlockConfiguration"].values()), logical_id
        assert len(props["PublicAccessBlockConfiguration"]) == 4, logical_id
        deny_plain_http = [
            s
            for s in policies[logical_id]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_plain_http, f"{logical_id} does not deny non-TLS requests"
        assert len(deny_plain_http[0]["Resource"]) == 2, "deny must cover the bucket and its objects"
        rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
        assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart-uploads"]
        assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == {
            "Ref": "NoncurrentVersionExpirationDays"
        }


def test_input_bucket_sends_events_to_eventbridge(deploy):
    props = deploy().resources["InputBucket"]["Properties"]
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}


def test_bucket_names_follow_stack_purpose_account(deploy):
    stack = deploy()
    for logical_id, purpose in BUCKETS.items():
        name = resolve_sub(stack.resources[logical_id]["Properties"]["BucketName"], stack.params)
        assert name == f"{STACK}-{purpose}-{ACCOUNT}"


def test_longest_allowed_stack_name_still_fits_s3_bucket_names(sam_template, deploy):
    constraint = sam_template["Parameters"]["StackName"]
    longest = "a" * constraint["MaxLength"]
    stack = deploy()
    params = {**stack.params, "AWS::StackName": longest}
    for logical_id in BUCKETS:
        name = resolve_sub(stack.resources[logical_id]["Properties"]["BucketName"], params)
        assert len(name) <= 63, f"{name} is {len(name)} characters"
    pattern = re.compile(constraint["AllowedPattern"])
    assert pattern.match("sagemaker-mlops")
    assert not pattern.match("SageMaker-MLOps"), "S3 bucket names must be lowercase"


def test_no_iam_statement_allows_every_action_or_all_of_sagemaker(deploy):
    for params in ({}, {"CreateNotebook": "true", "CreateDomain": "true"}):
        statements = iam_statements(deploy(**params).resources)
        assert statements, "the template defines roles"
        for logical_id, statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                assert action != "*", f"{logical_id} allows every action"
                assert not re.fullmatch(r"sagemaker:\*?", action, re.IGNORECASE), f"{logical_id}: {action}"
                assert action.split(":")[-1] != "*", f"{logical_id} allows a whole service: {action}"


@pytest.mark.parametrize("create_notebook", ["false", "true"])
def test_notebook_and_its_vpc_exist_only_when_asked(deploy, create_notebook):
    stack = deploy(CreateNotebook=create_notebook)
    present = {res["Type"] for res in stack.resources.values()} & NOTEBOOK_TYPES
    if create_notebook == "false":
        assert present == set()
        assert not {"NotebookInstanceName", "NotebookVpcId"} & set(stack.outputs)
    else:
        assert present == NOTEBOOK_TYPES
        assert {
            "NotebookInstanceName",
            "NotebookConsoleUrl",
            "NotebookJupyterLabUrl",
            "NotebookVpcId",
        } <= set(stack.outputs)
        vpc = stack.of_type("AWS::EC2::VPC")["NotebookVpc"]["Properties"]
        assert vpc["CidrBlock"] == "10.0.0.0/16"
        assert stack.resources["NotebookSubnet"]["Properties"]["CidrBlock"] == "10.0.1.0/24"


def test_notebook_in_an_existing_vpc_creates_no_network(deploy):
    stack = deploy(CreateNotebook="true", NotebookVpcId="vpc-0123abcd", NotebookSubnetId="subnet-0123abcd")
    assert "NotebookInstance" in stack.resources
    assert not stack.of_type("AWS::EC2::VPC")
    assert not stack.of_type("AWS::EC2::InternetGateway")
    assert stack.resources["NotebookSecurityGroup"]["Properties"]["VpcId"]["Fn::If"][2] == {
        "Ref": "NotebookVpcId"
    }


def test_notebook_security_group_opens_only_https(deploy):
    stack = deploy(CreateNotebook="true")
    groups = stack.of_type("AWS::EC2::SecurityGroup")
    assert groups
    for group in groups.values():
        for rule in group["Properties"]["SecurityGroupIngress"]:
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    extra_rules = stack.of_type("AWS::EC2::SecurityGroupIngress").values()
    assert all(r["Properties"]["IpProtocol"] != "-1" for r in extra_rules)


def test_notebook_defaults(deploy, sam_template):
    props = deploy(CreateNotebook="true").resources["NotebookInstance"]["Properties"]
    params = sam_template["Parameters"]
    assert props["InstanceType"] == {"Ref": "NotebookInstanceType"}
    assert params["NotebookInstanceType"]["Default"] == "ml.t3.medium"
    assert params["NotebookVolumeSizeGB"]["Default"] == 20
    assert params["NotebookRootAccess"]["Default"] == "Disabled"


@pytest.mark.parametrize("create_domain", ["false", "true"])
def test_domain_exists_only_when_asked(deploy, create_domain):
    stack = deploy(CreateDomain=create_domain, DomainVpcId="vpc-0123abcd", DomainSubnetIds="subnet-0123abcd")
    assert bool(stack.of_type("AWS::SageMaker::Domain")) == (create_domain == "true")


def test_required_outputs_exist(deploy):
    assert set(deploy().outputs) >= REQUIRED_OUTPUTS


def test_topic_is_encrypted_with_a_key_its_alarms_can_use_and_email_is_optional(deploy):
    without = deploy()
    key_id = without.resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"]
    # alias/aws/sns would encrypt too, but CloudWatch alarms cannot publish to such a topic.
    assert key_id["Fn::If"][0] == "UseKms" and key_id["Fn::If"][2] == {
        "Fn::GetAtt": ["NotificationTopicKey", "Arn"]
    }
    key = without.resources["NotificationTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    grants = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grants and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(grants[0]["Action"])
    failed_runs = without.resources["PipelineRunsFailedAlarm"]["Properties"]
    assert failed_runs["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    own_key = deploy(KmsKeyArn="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert "NotificationTopicKey" not in own_key.resources
    assert not without.of_type("AWS::SNS::Subscription")
    with_email = deploy(NotificationEmail="ml-team@example.com")
    assert with_email.of_type("AWS::SNS::Subscription")


def test_functions_that_expect_not_found_may_list_the_bucket_unconditionally(deploy):
    # S3 answers a missing key with 404 (not 403) only when the caller may s3:ListBucket the bucket, and a
    # GetObject/HeadObject request carries no s3:prefix for a condition to match.
    statements = iam_statements(deploy().resources)
    for role in ("StartRunFunctionRole", "PrepareRunFunctionRole", "QualityGateFunctionRole"):
        listing = [s for r, s in statements if r == role and "s3:ListBucket" in str(s["Action"])]
        assert listing, f"{role} cannot tell a missing object from a forbidden one"
        assert all("Condition" not in s for s in listing), role


def test_what_the_trigger_and_the_approval_listener_cannot_handle_is_dead_lettered_and_alarmed(deploy):
    stack = deploy()
    resources = stack.resources
    queue = {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}
    for function, rule in (
        ("StartRunFunction", "StartRunFunctionDatasetUploaded"),
        ("ApprovalListenerFunction", "ApprovalListenerFunctionPackageApproved"),
    ):
        # Lambda's own retries spent (asynchronous invocations) ...
        assert resources[function]["Properties"]["DeadLetterConfig"] == {"TargetArn": queue}, function
        # ... and events EventBridge could not deliver.
        [target] = resources[rule]["Properties"]["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": queue}, rule
    properties = resources["TriggerDeadLetterQueue"]["Properties"]
    assert properties["SqsManagedSseEnabled"]["Fn::If"][2] is True, "encrypted without a KMS key too"
    [grant] = resources["TriggerDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"} and "aws:SourceArn" in str(
        grant["Condition"]
    )
    alarm = resources["TriggerDeadLettersAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    assert {"RedriveFunctionName", "TriggerDeadLetterQueueUrl"} <= set(stack.outputs)


def test_uploads_to_every_dataset_folder_reach_the_trigger(deploy):
    pattern = deploy().resources["StartRunFunctionDatasetUploaded"]["Properties"]["EventPattern"]
    assert pattern["detail"]["object"]["key"] == [
        {"prefix": "training/"},
        {"prefix": "validation/"},
        {"prefix": "test/"},
    ]


def test_the_batch_waiter_arn_the_trigger_builds_is_the_waiters(deploy):
    resources = deploy().resources
    built = resources["StartRunFunction"]["Properties"]["Environment"]["Variables"][
        "BATCH_WAITER_STATE_MACHINE_ARN"
    ]
    assert built["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}-quiet-waiter")
    assert resources["BatchWaiterStateMachine"]["Properties"]["StateMachineName"] == {
        "Fn::Sub": "${AWS::StackName}-quiet-waiter"
    }
    table = resources["CoordinationTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
