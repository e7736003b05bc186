"""Transform template.yaml offline (aws-sam-translator); evaluate its conditions as CloudFormation would."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "123456789012"
STACK = "mlops-test"


class OfflinePolicyLoader(ManagedPolicyLoader):
    """No IAM offline: AWS managed policy names resolve to their well-known ARNs."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        return {}


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


def _evaluate(expr: Any, params: dict[str, Any], conditions: dict[str, Any], cache: dict[str, bool]) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return params.get(arg, arg)
        if fn == "Condition":
            return _condition(arg, params, conditions, cache)
        if fn == "Fn::Equals":
            left, right = (_evaluate(a, params, conditions, cache) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _evaluate(arg[0], params, conditions, cache)
        if fn == "Fn::And":
            return all(_evaluate(a, params, conditions, cache) for a in arg)
        if fn == "Fn::Or":
            return any(_evaluate(a, params, conditions, cache) for a in arg)
    return expr


def _condition(name: str, params: dict[str, Any], conditions: dict[str, Any], cache: dict[str, bool]) -> bool:
    if name not in cache:
        cache[name] = bool(_evaluate(conditions[name], params, conditions, cache))
    return cache[name]


class DeployedTemplate:
    """The CloudFormation a stack would get for some parameter values: resources whose condition holds."""

    def __init__(self, cfn: dict[str, Any], params: dict[str, Any]) -> None:
        defaults = {k: v.get("Default") for k, v in cfn.get("Parameters", {}).items()}
        self.params = {**defaults, "AWS::StackName": STACK, "AWS::AccountId": ACCOUNT, **params}
        conditions = cfn.get("Conditions", {})
        cache: dict[str, bool] = {}
        self.conditions = {name: _condition(name, self.params, conditions, cache) for name in conditions}
        self.cfn = cfn
        self.resources = {
            logical_id: res
            for logical_id, res in cfn["Resources"].items()
            if "Condition" not in res or self.conditions[res["Condition"]]
        }
        self.outputs = {
            key: out
            for key, out in cfn.get("Outputs", {}).items()
            if "Condition" not in out or self.conditions[out["Condition"]]
        }

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
            cfn = transform(_s3_uris(copy.deepcopy(sam_template)), values, OfflinePolicyLoader())
            cache[key] = DeployedTemplate(cfn, values)
        return cache[key]

    return _deploy
