"""Transform template.yaml as the offline deploy does, and keep what its conditions create."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse

from offline import ACCOUNT_ID
from offline.sam_template import active_resources, sam_transform

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = ACCOUNT_ID
STACK = "mlops-test"


def _s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    """Point local code paths at S3 (as `sam package` would) and inline ASL definitions."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://artifacts/{logical_id}.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://artifacts/{logical_id}.zip"
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["Definition"] = json.loads((ROOT / props.pop("DefinitionUri")).read_text())
    return template


class DeployedTemplate:
    """The CloudFormation a stack would get for some parameter values: resources whose condition holds."""

    def __init__(self, cfn: dict[str, Any], params: dict[str, Any]) -> None:
        defaults = {k: v.get("Default") for k, v in cfn.get("Parameters", {}).items()}
        self.params = {**defaults, "AWS::StackName": STACK, "AWS::AccountId": ACCOUNT, **params}
        self.cfn = cfn
        self.resources = active_resources(cfn, self.params)
        self.outputs = active_resources(cfn, self.params, section="Outputs")

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return yaml_parse((ROOT / "template.yaml").read_text())


@pytest.fixture(scope="session")
def deploy(sam_template: dict[str, Any]) -> Callable[..., DeployedTemplate]:
    cache: dict[str, DeployedTemplate] = {}

    def _deploy(**params: str) -> DeployedTemplate:
        key = json.dumps(params, sort_keys=True)
        if key not in cache:
            values = {"StackName": STACK, **params}
            cfn = sam_transform(_s3_uris(copy.deepcopy(sam_template)), values)
            cache[key] = DeployedTemplate(cfn, values)
        return cache[key]

    return _deploy
