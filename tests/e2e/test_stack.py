"""The session's stack is template.yaml as written: every output, function and state machine it declares."""

from __future__ import annotations

from pathlib import Path

from samtranslator.yaml_helper import yaml_parse

from offline.embedded import EmbeddedAws
from offline.sam_template import active_resources

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _source() -> dict:
    return yaml_parse(TEMPLATE.read_text())


def test_every_output_of_template_yaml_is_readable_from_describe_stacks(aws: EmbeddedAws) -> None:
    template = _source()
    active = active_resources(template, {"StackName": aws.stack_name}, section="Outputs")
    # Optional parts (notebook, domain) are off by default: their outputs must be absent, the rest present.
    assert set(active) < set(template["Outputs"])
    [stack] = aws.client("cloudformation").describe_stacks(StackName=aws.stack_name)["Stacks"]
    assert {o["OutputKey"] for o in stack["Outputs"]} == set(active)


def test_every_function_runs_from_its_build_folder_with_the_layer(aws: EmbeddedAws) -> None:
    assert aws.deployment
    declared = {k for k, v in _source()["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    deployed = {code.logical_id: code for code in aws.deployment.functions.values()}
    assert set(deployed) == declared
    for logical_id, code in deployed.items():
        assert code.code_dir == aws.build_dir / logical_id
        assert [d.name for d in code.layer_dirs] == ["CommonLayer"], logical_id


def test_every_state_machine_is_visible_to_the_step_functions_api(aws: EmbeddedAws) -> None:
    assert aws.deployment
    declared = [k for k, v in _source()["Resources"].items() if v["Type"] == "AWS::Serverless::StateMachine"]
    assert declared
    sfn = aws.client("stepfunctions")
    for logical_id in declared:
        machine = sfn.describe_state_machine(stateMachineArn=aws.deployment.resources[logical_id])
        assert "${" not in machine["definition"], f"{logical_id}: DefinitionSubstitutions left unresolved"
