"""Read a SAM template and do offline what CloudFormation does with it before creating anything: the SAM
transform, its conditions, dropping `Fn::If ... AWS::NoValue` list items, and telling which resources moto's
CloudFormation would skip and who reads them."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from offline import ACCOUNT_ID, REGION, DeployError


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
