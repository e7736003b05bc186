"""offline.stack.deploy on a small SAM app (function + layer + state machine with DefinitionUri and
DefinitionSubstitutions), deployed next to the project's stack in the session's embedded AWS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from offline import DeployError
from offline.embedded import EmbeddedAws
from offline.stack import Deployment, deploy

FIXTURE_APP = Path(__file__).resolve().parent / "fixture_app"


@pytest.fixture(scope="module")
def fixture_stack(aws: EmbeddedAws, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    build_dir = tmp_path_factory.mktemp("fixture-build")
    shutil.copytree(FIXTURE_APP, build_dir, dirs_exist_ok=True)
    # A change to the template must show up offline with nothing else edited: add an output here.
    template = (build_dir / "template.yaml").read_text()
    template += "  AddedLater:\n    Value: !GetAtt Greeter.Arn\n"
    (build_dir / "template.yaml").write_text(template)
    deployment = deploy(aws.client, build_dir, "fixture-app", {"Greeting": "bonjour"}, cache_dir=None)
    aws.state.registry.register_functions(deployment.functions)
    return deployment


def test_outputs_come_from_the_template_including_a_late_edit(
    aws: EmbeddedAws, fixture_stack: Deployment
) -> None:
    [stack] = aws.client("cloudformation").describe_stacks(StackName="fixture-app")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs == fixture_stack.outputs
    assert set(outputs) == {"GreeterName", "MachineArn", "DropBucket", "AddedLater"}
    assert outputs["AddedLater"].endswith(f":function:{outputs['GreeterName']}")


def test_function_runs_from_the_build_folder_with_its_layer_and_environment(
    aws: EmbeddedAws, fixture_stack: Deployment
) -> None:
    name = fixture_stack.outputs["GreeterName"]
    response = aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps({"name": "Ada"}))
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "greeting": "bonjour, Ada!",
        "bucket": fixture_stack.outputs["DropBucket"],
        "function": name,
    }
    code = fixture_stack.functions[name]
    assert code.code_dir.name == "greeter"
    assert [d.name for d in code.layer_dirs] == ["layer"]


def test_code_and_definition_are_uploaded_like_sam_package(
    aws: EmbeddedAws, fixture_stack: Deployment
) -> None:
    greeter = fixture_stack.template["Resources"]["Greeter"]["Properties"]["Code"]
    body = aws.client("s3").get_object(Bucket=greeter["S3Bucket"], Key=greeter["S3Key"])["Body"].read()
    assert body[:2] == b"PK"  # a zip, as sam package uploads it
    machine = fixture_stack.template["Resources"]["Machine"]["Properties"]
    assert machine["DefinitionSubstitutions"] == {"GreeterArn": {"Fn::GetAtt": ["Greeter", "Arn"]}}


def test_state_machine_runs_with_substitutions_and_catches_lambda_errors(
    aws: EmbeddedAws, fixture_stack: Deployment
) -> None:
    sfn = aws.client("stepfunctions")
    arn = fixture_stack.outputs["MachineArn"]
    ok = sfn.start_execution(stateMachineArn=arn, name="greets", input=json.dumps({"name": "Grace"}))
    refused = sfn.start_execution(stateMachineArn=arn, name="refuses", input=json.dumps({"refuse": True}))
    done = {e["name"]: e for e in aws.wait_for_executions(arn, count=2, timeout=30)}
    assert done["greets"]["status"] == "SUCCEEDED", done["greets"]
    assert json.loads(done["greets"]["output"])["greeting"] == "bonjour, Grace!"
    assert done["refuses"]["status"] == "FAILED"
    assert done["refuses"]["error"] == "GreetingFailed"
    history = sfn.get_execution_history(executionArn=refused["executionArn"])["events"]
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failures and failures[0]["error"] == "GreetingRefused"
    assert ok["executionArn"] != refused["executionArn"]


def test_bucket_versioning_from_the_template_is_on(aws: EmbeddedAws, fixture_stack: Deployment) -> None:
    s3 = aws.client("s3")
    bucket = fixture_stack.outputs["DropBucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"same")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"same")["VersionId"]
    assert first != second


def test_a_policy_list_item_resolving_to_no_value_is_dropped(
    aws: EmbeddedAws, fixture_stack: Deployment
) -> None:
    role = fixture_stack.resources[
        fixture_stack.template["Resources"]["Greeter"]["Properties"]["Role"]["Fn::GetAtt"][0]
    ]
    names = aws.client("iam").list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 1  # S3ReadPolicy; the conditional S3CrudPolicy is gone, not a None


def test_resources_moto_cannot_create_are_reported_not_hidden(fixture_stack: Deployment) -> None:
    assert fixture_stack.not_created == ["Unsupported (AWS::SNS::Subscription)"]


def test_missing_build_output_says_to_build(aws: EmbeddedAws, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="make build"):
        deploy(aws.client, tmp_path, "nothing-here")


def test_a_template_the_sam_transform_rejects_names_the_problem(aws: EmbeddedAws, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Broken:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      CodeUri: code\n"
        "      Handler: app.handler\n"
        "      Runtime: python3.12\n"
        "      Events:\n"
        "        Tick: { Type: NotAnEventType }\n"
    )
    with pytest.raises(DeployError, match=r"SAM transform rejected the template: .*Broken"):
        deploy(aws.client, tmp_path, "broken-template", cache_dir=None)


def test_a_function_reading_a_resource_moto_cannot_create_fails_the_deploy(
    aws: EmbeddedAws, tmp_path: Path
) -> None:
    shutil.copytree(FIXTURE_APP, tmp_path, dirs_exist_ok=True)
    template = (tmp_path / "template.yaml").read_text()
    template = template.replace(
        "          DROP_BUCKET: !Ref Drop\n",
        "          DROP_BUCKET: !Ref Drop\n          SUBSCRIPTION: !Ref Unsupported\n",
    )
    (tmp_path / "template.yaml").write_text(template)
    with pytest.raises(DeployError, match=r"Greeter\.Environment -> Unsupported \(AWS::SNS::Subscription\)"):
        deploy(aws.client, tmp_path, "needs-missing", cache_dir=None)
