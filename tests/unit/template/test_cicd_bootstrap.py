"""cicd/bootstrap.yaml: its roles can deploy what template.yaml declares; only the intended jobs get them."""

from __future__ import annotations

import copy
from fnmatch import fnmatchcase
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse

from offline.sam_template import sam_transform
from tests.unit.template.conftest import ROOT, STACK, _s3_uris

BOOTSTRAP = ROOT / "cicd" / "bootstrap.yaml"

# What CloudFormation calls to create each resource type template.yaml (after the SAM transform) uses. A type
# missing here fails the test below: add the actions to the execution role in cicd/bootstrap.yaml, then here.
CREATE_ACTIONS: dict[str, set[str]] = {
    "AWS::CloudWatch::Alarm": {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"},
    "AWS::DynamoDB::Table": {"dynamodb:CreateTable", "dynamodb:DeleteTable"},
    "AWS::EC2::InternetGateway": {"ec2:CreateInternetGateway", "ec2:DeleteInternetGateway"},
    "AWS::EC2::Route": {"ec2:CreateRoute", "ec2:DeleteRoute"},
    "AWS::EC2::RouteTable": {"ec2:CreateRouteTable", "ec2:DeleteRouteTable"},
    "AWS::EC2::SecurityGroup": {"ec2:CreateSecurityGroup", "ec2:DescribeSecurityGroups"},
    "AWS::EC2::SecurityGroupIngress": {"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"},
    "AWS::EC2::Subnet": {"ec2:CreateSubnet", "ec2:DeleteSubnet"},
    "AWS::EC2::SubnetRouteTableAssociation": {"ec2:AssociateRouteTable", "ec2:DisassociateRouteTable"},
    "AWS::EC2::VPC": {"ec2:CreateVpc", "ec2:DeleteVpc", "ec2:DescribeVpcs"},
    "AWS::EC2::VPCGatewayAttachment": {"ec2:AttachInternetGateway", "ec2:DetachInternetGateway"},
    "AWS::Events::Rule": {"events:PutRule", "events:PutTargets", "events:DeleteRule"},
    "AWS::IAM::Policy": {"iam:PutRolePolicy", "iam:DeleteRolePolicy"},
    "AWS::IAM::Role": {"iam:CreateRole", "iam:DeleteRole", "iam:PassRole"},
    "AWS::KMS::Key": {"kms:CreateKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"},
    "AWS::Lambda::EventInvokeConfig": {"lambda:PutFunctionEventInvokeConfig"},
    "AWS::Lambda::Function": {"lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:DeleteFunction"},
    "AWS::Lambda::LayerVersion": {"lambda:PublishLayerVersion", "lambda:DeleteLayerVersion"},
    "AWS::Lambda::Permission": {"lambda:AddPermission", "lambda:RemovePermission"},
    "AWS::Logs::LogGroup": {"logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup"},
    "AWS::S3::Bucket": {"s3:CreateBucket", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration"},
    "AWS::S3::BucketPolicy": {"s3:PutBucketPolicy", "s3:DeleteBucketPolicy"},
    "AWS::SNS::Subscription": {"sns:Subscribe", "sns:Unsubscribe"},
    "AWS::SNS::Topic": {"sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes"},
    "AWS::SQS::Queue": {"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"},
    "AWS::SQS::QueuePolicy": {"sqs:SetQueueAttributes"},
    "AWS::SageMaker::Domain": {"sagemaker:CreateDomain", "sagemaker:DeleteDomain"},
    "AWS::SageMaker::NotebookInstance": {
        "sagemaker:CreateNotebookInstance",
        "sagemaker:DeleteNotebookInstance",
    },
    "AWS::SageMaker::NotebookInstanceLifecycleConfig": {"sagemaker:CreateNotebookInstanceLifecycleConfig"},
    "AWS::Scheduler::Schedule": {"scheduler:CreateSchedule", "scheduler:DeleteSchedule"},
    "AWS::StepFunctions::StateMachine": {
        "states:CreateStateMachine",
        "states:UpdateStateMachine",
        "logs:CreateLogDelivery",
    },
}


@pytest.fixture(scope="module")
def bootstrap() -> dict[str, Any]:
    return yaml_parse(BOOTSTRAP.read_text())


@pytest.fixture(scope="module")
def every_resource(sam_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """template.yaml after the SAM transform with every optional part (the role must deploy any of them)."""
    return sam_transform(_s3_uris(copy.deepcopy(sam_template)), {"StackName": STACK})["Resources"]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(role: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The role's Allow statements whose Action patterns match `action` (IAM ignores case in actions)."""
    return [
        s
        for s in statements(role)
        if s["Effect"] == "Allow"
        and any(fnmatchcase(action.lower(), a.lower()) for a in as_list(s["Action"]))
    ]


def test_the_execution_role_can_create_every_resource_type_of_the_stack(
    bootstrap: dict[str, Any], every_resource: dict[str, dict[str, Any]]
) -> None:
    role = bootstrap["Resources"]["CloudFormationExecutionRole"]
    types = {r["Type"] for r in every_resource.values()}
    unknown = sorted(types - set(CREATE_ACTIONS))
    assert not unknown, (
        f"new resource types {unknown}: grant them in cicd/bootstrap.yaml, list them in this test"
    )
    missing = {t: sorted(a for a in CREATE_ACTIONS[t] if not allows(role, a)) for t in types}
    assert not {t: a for t, a in missing.items() if a}


def test_the_execution_role_attaches_only_the_managed_policies_the_stack_uses(
    bootstrap: dict[str, Any], every_resource: dict[str, dict[str, Any]]
) -> None:
    role = bootstrap["Resources"]["CloudFormationExecutionRole"]
    [attach] = allows(role, "iam:AttachRolePolicy")
    patterns = [
        p["Fn::Sub"].replace("${AWS::Partition}", "aws")
        for p in attach["Condition"]["ArnLike"]["iam:PolicyARN"]
    ]
    used = {
        arn
        for r in every_resource.values()
        if r["Type"] == "AWS::IAM::Role"
        for arn in r["Properties"].get("ManagedPolicyArns", [])
    }
    assert used, "SAM attaches AWSLambdaBasicExecutionRole to every function role"
    assert all(any(fnmatchcase(arn, p) for p in patterns) for arn in used), (used, patterns)
    assert not any(fnmatchcase("arn:aws:iam::aws:policy/AdministratorAccess", p) for p in patterns)


def test_only_jobs_of_one_repository_and_environment_can_assume_the_deploy_role(
    bootstrap: dict[str, Any],
) -> None:
    role = bootstrap["Resources"]["DeployRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    # StringEquals, not StringLike: no wildcard can widen the subject to other branches, forks, environments.
    assert set(trust["Condition"]) == {"StringEquals"}
    claims = trust["Condition"]["StringEquals"]
    assert claims["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert claims["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${GitHubRepository}:environment:${GitHubEnvironment}"
    }


def test_the_deploy_role_can_only_pass_the_execution_role_to_cloudformation(
    bootstrap: dict[str, Any],
) -> None:
    role = bootstrap["Resources"]["DeployRole"]
    [pass_role] = allows(role, "iam:PassRole")
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    # No wildcard resource anywhere in what the workflow's credentials can do.
    assert all(s["Resource"] != "*" for s in statements(role))
    assert not allows(role, "iam:CreateRole")
    assert not allows(role, "lambda:CreateFunction")


def test_the_deploy_role_changes_only_its_own_stack(bootstrap: dict[str, Any]) -> None:
    role = bootstrap["Resources"]["DeployRole"]
    for action in ("cloudformation:ExecuteChangeSet", "cloudformation:CreateChangeSet"):
        resources = [r for s in allows(role, action) for r in as_list(s["Resource"])]
        subs = [r["Fn::Sub"] for r in resources]
        assert all(s.endswith(":stack/${StackName}/*") or "transform/Serverless" in s for s in subs), subs
