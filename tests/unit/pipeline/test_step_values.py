"""The typed step values hold the workflows together: every JSONPath of statemachines/*.asl.json resolves
against them, every Lambda step's parameters fit its handler's input model and its result fits where the ASL
stores it, SageMaker requests use SageMaker's own fields, and each handler refuses a malformed input naming
the field. A renamed field fails here, not in a run."""

from __future__ import annotations

import copy
import json
import re
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    TypeAliasType,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import botocore.session
import pytest
from samcli.yamlhelper import yaml_parse

from mlops_common import step_values
from mlops_common.step_values import ApiShape, StepInputError, fields, parse
from tests.conftest import load_function_module

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"

# Each state machine's state document, its execution input and its output.
DOCUMENTS = {
    "pipeline": step_values.PipelineState,
    "deploy": step_values.DeployState,
    "batch": step_values.BatchState,
    "batch_waiter": step_values.BatchWaiterState,
}
INPUTS = {"deploy": step_values.DeployInput}
OUTPUTS = {"deploy": step_values.DeployOutcome}
# What a .sync job integration returns: the job's Describe response.
SYNC_RESULTS = {
    "CreateProcessingJob": "DescribeProcessingJob",
    "CreateTrainingJob": "DescribeTrainingJob",
    "CreateTransformJob": "DescribeTransformJob",
    "StartExecution": "DescribeExecution",
}
# Paths in a state's fields, outside and inside intrinsic functions; "$$." is the context object.
PATH = re.compile(r"(?<![$\w])\$(?!\$)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")
PATH_FIELDS = (
    "InputPath",
    "OutputPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "ItemsPath",
)


# ------------------------------------------------------------------------------------------- type resolution


@dataclass(frozen=True)
class Botocore:
    """A botocore shape, for SageMaker's (and Step Functions') own request and response fields."""

    shape: Any

    @property
    def name(self) -> str:
        return str(self.shape.name)


class Unresolved(Exception):
    pass


@cache
def service(name: str) -> Any:
    return botocore.session.get_session().get_service_model(name)


def unwrap(model: Any) -> Any:
    """Aliases, NotRequired/Required and Annotated peeled; an ApiShape becomes its botocore shape."""
    while True:
        if isinstance(model, TypeAliasType):
            model = model.__value__
        elif get_origin(model) in (NotRequired, Required):
            model = get_args(model)[0]
        elif get_origin(model) is Annotated:
            marks = [mark for mark in model.__metadata__ if isinstance(mark, ApiShape)]
            if marks:
                return Botocore(service(marks[0].service).shape_for(marks[0].shape))
            model = get_args(model)[0]
        else:
            return model


def field_of(shape: Any, key: str) -> str | None:
    """The member a Parameters key names: Step Functions spells its integration's fields in PascalCase
    where botocore's Step Functions model has camelCase."""
    return next((name for name in shape.members if name.lower() == key.lower()), None)


def scalar(shape: Any) -> Any:
    """A botocore shape as a Python type where it is a scalar."""
    kinds = {"string": str, "integer": int, "long": int, "float": float, "double": float, "boolean": bool}
    if shape.type_name in kinds:
        return kinds[shape.type_name]
    return Any if shape.type_name in ("timestamp", "blob") else Botocore(shape)


def member(model: Any, key: str | int) -> Any:
    """The type one step down a path: a field, a list item or a map value."""
    model = unwrap(model)
    origin = get_origin(model)
    if model is Any:
        return Any
    if isinstance(model, Botocore):
        shape = model.shape
        if shape.type_name == "structure" and isinstance(key, str) and field_of(shape, key):
            return scalar(shape.members[field_of(shape, key)])
        if shape.type_name == "list" and isinstance(key, int):
            return scalar(shape.member)
        if shape.type_name == "map" and isinstance(key, str):
            return scalar(shape.value)
        raise Unresolved(f"{model.name} has no {key!r}")
    if origin in (Union, types.UnionType):
        for option in get_args(model):
            if option is not type(None):
                try:
                    return member(option, key)
                except Unresolved:
                    continue
        raise Unresolved(f"no member of {model} has {key!r}")
    if isinstance(model, type) and step_values.is_typeddict(model):
        if key in fields(model):
            return fields(model)[key]
        raise Unresolved(f"{model.__name__} has no field {key!r}")
    if origin is dict and isinstance(key, str):
        return get_args(model)[1]
    if origin is list and isinstance(key, int):
        return get_args(model)[0]
    raise Unresolved(f"{model} has no {key!r}")


def resolve(model: Any, path: str) -> Any:
    if not path.startswith("$"):
        raise Unresolved(f"{path!r} is not a path")
    current = model
    for name, index in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", path[1:]):
        current = member(current, name or int(index))
    return current


def fits(source: Any, target: Any) -> bool:
    """Whether a value of type `source` is acceptable where `target` is declared."""
    source, target = unwrap(source), unwrap(target)
    if source is Any or target is Any or source == target:
        return True
    if get_origin(source) in (Union, types.UnionType):
        return all(fits(option, target) for option in get_args(source))
    if get_origin(target) in (Union, types.UnionType):
        return any(fits(source, option) for option in get_args(target))
    if get_origin(source) is Literal:
        values = get_args(source)
        return (
            all(value in get_args(target) for value in values)
            if get_origin(target) is Literal
            else all(isinstance(value, unwrap(target)) for value in values)
        )
    if isinstance(target, Botocore):
        return fits_botocore(source, target.shape)
    if isinstance(source, Botocore):
        return get_origin(target) is dict
    if step_values.is_typeddict(target):
        if not step_values.is_typeddict(source):
            return False
        have = fields(source)
        return all(key in have for key in target.__required_keys__) and all(
            fits(have[key], declared) for key, declared in fields(target).items() if key in have
        )
    if get_origin(target) is dict:
        return step_values.is_typeddict(source) or get_origin(source) is dict
    if get_origin(target) is list:
        return get_origin(source) is list and fits(get_args(source)[0], get_args(target)[0])
    return source is int and target is float


def fits_botocore(source: Any, shape: Any) -> bool:
    """A value of type `source` where SageMaker expects `shape`."""
    source = unwrap(source)
    if source is Any:
        return True
    if isinstance(source, Botocore):
        return source.shape.name == shape.name
    if get_origin(source) in (Union, types.UnionType):
        return all(fits_botocore(option, shape) for option in get_args(source) if option is not type(None))
    if shape.type_name == "structure":
        return step_values.is_typeddict(source) and all(
            key in shape.members and fits_botocore(declared, shape.members[key])
            for key, declared in fields(source).items()
        )
    if shape.type_name == "list":
        return get_origin(source) is list and fits_botocore(get_args(source)[0], shape.member)
    return fits(source, scalar(shape))


# ---------------------------------------------------------------------------------------- the definitions


@cache
def template() -> dict[str, Any]:
    return yaml_parse((ROOT / "template.yaml").read_text())


def machines() -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """name -> (definition, substitution -> what it names: "function:<dir>" or "machine:<name>")."""
    resources = template()["Resources"]
    found = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        properties = resource["Properties"]
        name = Path(properties["DefinitionUri"]).name.removesuffix(".asl.json")
        targets = {}
        for key, value in properties.get("DefinitionSubstitutions", {}).items():
            logical = (value.get("Fn::GetAtt") or [value.get("Ref")])[0] if isinstance(value, dict) else None
            target = resources.get(str(logical), {})
            if target.get("Type") == "AWS::Serverless::Function":
                targets[key] = "function:" + Path(target["Properties"]["CodeUri"]).name
            elif target.get("Type") == "AWS::Serverless::StateMachine":
                targets[key] = "machine:" + Path(target["Properties"]["DefinitionUri"]).name.removesuffix(
                    ".asl.json"
                )
        found[name] = (json.loads((ROOT / properties["DefinitionUri"]).read_text()), targets)
    return found


@cache
def handler_types(function: str) -> tuple[Any, Any]:
    """(input, result) as the handler declares them."""
    hints = get_type_hints(load_function_module(function).lambda_handler)
    return hints["event"], hints["return"]


def all_states(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found, pending = [], [definition]
    while pending:
        holder = pending.pop()
        for name, state in holder["States"].items():
            found.append((name, state))
            pending += state.get("Branches", [])
    return found


def paths_in(value: Any) -> list[str]:
    return PATH.findall(value) if isinstance(value, str) else []


def choice_rules(state: dict[str, Any]) -> list[dict[str, Any]]:
    rules, pending = [], list(state.get("Choices", []))
    while pending:
        rule = pending.pop()
        rules.append(rule)
        pending += rule.get("And", []) + rule.get("Or", []) + ([rule["Not"]] if "Not" in rule else [])
    return rules


COMPARED = {"String": str, "Numeric": float, "Boolean": bool, "Timestamp": str}


class Checker:
    def __init__(self, machine: str, document: Any = None) -> None:
        self.machine = machine
        self.definition, self.targets = machines()[machine]
        self.document = document or DOCUMENTS[machine]
        self.problems: list[str] = []

    def fail(self, state: str, message: str) -> None:
        self.problems.append(f"{self.machine}.{state}: {message}")

    def type_of(self, state: str, expression: str, scope: Any) -> Any:
        """The type an expression of Parameters/ResultSelector yields (paths inside intrinsics checked)."""
        if expression.startswith("$$."):
            return str
        for path in paths_in(expression):
            try:
                resolve(scope, path)
            except Unresolved as error:
                self.fail(state, f"{path}: {error}")
                return Any
        if PATH.fullmatch(expression):
            return resolve(scope, expression)
        return Any  # an intrinsic function's result

    def check(self) -> list[str]:
        for name, state in all_states(self.definition):
            for key in PATH_FIELDS:
                if key in state and not (key == "OutputPath" and state["Type"] == "Parallel"):
                    self.type_of(name, state[key], self.document)
            for rule in choice_rules(state):
                self.check_rule(name, rule)
            for catcher in state.get("Catch", []):
                self.store(name, catcher.get("ResultPath", "$"), step_values.StepError)
            if state["Type"] == "Task":
                self.check_task(name, state)
            elif state["Type"] == "Pass":
                self.check_pass(name, state)
        return self.problems

    def check_rule(self, state: str, rule: dict[str, Any]) -> None:
        if "Variable" not in rule:
            return
        variable = self.type_of(state, rule["Variable"], self.document)
        for operator, operand in rule.items():
            kind = next((COMPARED[prefix] for prefix in COMPARED if operator.startswith(prefix)), None)
            if operator.endswith("Path"):
                self.type_of(state, operand, self.document)
            if kind is not None and not fits(kind, variable) and not fits(variable, kind):
                self.fail(state, f"{rule['Variable']} is {variable}, compared with {operator}")

    def store(self, state: str, result_path: str | None, result: Any) -> None:
        """The result fits the field of the state document it is written to."""
        if result_path is None:
            return
        try:
            declared = resolve(self.document, result_path)
        except Unresolved as error:
            self.fail(state, f"ResultPath {result_path}: {error}")
            return
        if isinstance(result, dict):  # a Pass state's Parameters
            self.check_object(state, result, declared, result_path)
        elif not fits(result, declared):
            self.fail(state, f"its result ({result}) does not fit {result_path} ({declared})")

    def check_pass(self, state: str, definition: dict[str, Any]) -> None:
        if "Result" in definition and "ResultPath" in definition:
            try:
                parse(resolve(self.document, definition["ResultPath"]), definition["Result"], what="Result")
            except (StepInputError, Unresolved) as error:
                self.fail(state, str(error))
        if "Parameters" in definition:
            built = self.build(state, definition["Parameters"], self.document)
            if "ResultPath" in definition:
                self.store(state, definition["ResultPath"], built)
            elif definition.get("End") and self.machine in OUTPUTS:
                self.check_object(state, built, OUTPUTS[self.machine], "output")

    def build(self, state: str, parameters: dict[str, Any], scope: Any) -> dict[str, Any]:
        """{field: type} of a Parameters or ResultSelector object."""
        built: dict[str, Any] = {}
        for key, value in parameters.items():
            if key.endswith(".$"):
                built[key[:-2]] = self.type_of(state, value, scope)
            elif isinstance(value, dict):
                built[key] = self.build(state, value, scope)
            elif isinstance(value, list):
                built[key] = [
                    self.build(state, item, scope) if isinstance(item, dict) else item for item in value
                ]
            else:
                built[key] = value
        return built

    def check_object(self, state: str, built: dict[str, Any], model: Any, where: str) -> None:
        """A built parameter object against a TypedDict: no unknown field, nothing required missing."""
        model = unwrap(model)
        if get_origin(model) in (Union, types.UnionType):
            members = [option for option in get_args(model) if step_values.is_typeddict(option)]
            model = next((m for m in members if set(built) <= set(fields(m))), members[0])
        declared = fields(model)
        for key, value in built.items():
            if key not in declared:
                if key != "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID":
                    self.fail(state, f"{where}.{key} is not a field of {model.__name__}")
            elif isinstance(value, dict):
                self.check_object(state, value, declared[key], f"{where}.{key}")
            elif isinstance(value, str | int | float | bool) and not isinstance(value, type):
                try:
                    parse(declared[key], value, what=f"{where}.{key}")
                except StepInputError as error:
                    self.fail(state, str(error))
            elif not fits(value, declared[key]):
                self.fail(state, f"{where}.{key} gets {value}, declared {declared[key]}")
        for key in model.__required_keys__ - set(built):
            self.fail(state, f"{where}.{key} ({model.__name__}) is never passed")

    def check_api_request(self, state: str, built: dict[str, Any], shape: Any, where: str) -> None:
        for key, value in built.items():
            if field_of(shape, key) is None:
                self.fail(state, f"{where}.{key} is not a field of {shape.name}")
                continue
            field = shape.members[field_of(shape, key)]
            if isinstance(value, dict) and field.type_name == "structure":
                self.check_api_request(state, value, field, f"{where}.{key}")
            elif isinstance(value, list) and field.type_name == "list":
                for item in value:
                    if isinstance(item, dict) and field.member.type_name == "structure":
                        self.check_api_request(state, item, field.member, f"{where}.{key}[]")
            elif not isinstance(value, str | int | float | bool) and not fits_botocore(value, field):
                self.fail(state, f"{where}.{key} gets {value}, SageMaker expects {field.name}")

    def check_task(self, state: str, definition: dict[str, Any]) -> None:
        resource = definition["Resource"]
        parameters = definition.get("Parameters")
        if resource.startswith("${"):
            target = self.targets[resource[2:-1]]
            accepted, returned = handler_types(target.removeprefix("function:"))
            if parameters is None:
                if not fits(self.document, accepted):
                    self.fail(state, f"the state document does not fit {target}'s input {accepted}")
            else:
                self.check_object(state, self.build(state, parameters, self.document), accepted, "input")
            if get_origin(returned) in (Union, types.UnionType):  # a handler for two kinds of events
                returned = next(
                    (
                        o
                        for o in get_args(returned)
                        if fits(o, resolve(self.document, definition.get("ResultPath", "$")))
                    ),
                    returned,
                )
            self.store(state, definition.get("ResultPath", "$"), returned)
            return
        integration = resource.split(":::")[1].removeprefix("aws-sdk:")
        service_name, action = integration.split(":")[:2]
        action = action.split(".")[0]  # createTrainingJob.sync -> createTrainingJob
        operation_name = action[0].upper() + action[1:]
        model = service("sagemaker" if service_name == "sagemaker" else "stepfunctions")
        operation = model.operation_model(operation_name)
        built = self.build(state, parameters or {}, self.document)
        started = None
        if operation_name == "StartExecution":
            started = self.targets[built["StateMachineArn"][2:-1]].removeprefix("machine:")
            self.check_object(state, built.pop("Input"), INPUTS[started], "Input")
        self.check_api_request(state, built, operation.input_shape, operation_name)
        described = SYNC_RESULTS.get(operation_name) if ".sync" in resource else None
        result = Botocore(model.operation_model(described or operation_name).output_shape)
        selector = definition.get("ResultSelector")
        if selector is not None:
            selected = self.build(state, selector, result)
            if started is not None and selected.get("output") is not None:
                selected["output"] = OUTPUTS[started]  # .sync:2 returns the child's output as JSON
            target = resolve(self.document, definition.get("ResultPath", "$"))
            self.check_object(state, selected, target, definition.get("ResultPath", "$"))
        else:
            self.store(state, definition.get("ResultPath", "$"), result)


@pytest.mark.parametrize("machine", sorted(DOCUMENTS))
def test_every_path_and_every_step_value_of_the_definition_fits_the_typed_models(machine: str):
    assert machines()[machine], machine
    assert Checker(machine).check() == []


def test_a_renamed_field_fails_the_definition_check():
    """The check can fail: with `passed` renamed, GatePassed? reads a field nobody writes and the gate's
    result no longer fits where the ASL stores it."""
    renamed = {
        **{k: v for k, v in fields(step_values.GateDecision).items() if k != "passed"},
        "hasPassed": bool,
    }
    gate = TypedDict("RenamedGate", renamed)  # type: ignore[misc]
    document = TypedDict("RenamedState", {**fields(step_values.PipelineState), "gate": gate}, total=False)  # type: ignore[misc]

    problems = Checker("pipeline", document).check()

    assert any(problem.startswith("pipeline.GatePassed?: $.gate.passed") for problem in problems), problems
    assert any(problem.startswith("pipeline.QualityGate: its result") for problem in problems), problems


def test_a_request_field_sagemaker_does_not_know_fails_the_check():
    checker = Checker("deploy")
    request = service("sagemaker").shape_for("CreateModelInput")

    checker.check_api_request(
        "CreateModel", {"ModelName": str, "PrimaryContainers": str}, request, "CreateModel"
    )

    assert checker.problems == [
        "deploy.CreateModel: CreateModel.PrimaryContainers is not a field of CreateModelInput"
    ]


# ---------------------------------------------------------------------------------------- handler entries

# handler -> (sample event, a field to remove from it, what the error names)
MALFORMED = {
    "prepare_run": ("pipeline_execution_input.json", ["manifest"], "manifest is missing"),
    "quality_gate": ("quality_gate.json", ["run", "paths", "evaluation"], "run.paths.evaluation is missing"),
    "register_model": ("register_model.json", ["gate", "metrics"], "gate.metrics is missing"),
    "prepare_deployment": ("prepare_deployment.json", ["executionArn"], "executionArn is missing"),
    "finish_deployment": (
        "finish_deployment.json",
        ["state", "deploy", "packageArn"],
        "state.deploy.packageArn",
    ),
    "smoke_test": ("smoke_test.json", ["smoke", "rows"], "smoke.rows is missing"),
    "check_soak": ("check_soak.json", ["soakSeconds"], "soakSeconds is missing"),
    "notify": ("notify_failed.json", ["outcome"], "outcome is missing"),
    "prepare_batch": ("batch_execution_input.json", ["inputPrefix"], "inputPrefix is missing"),
    "report_batch": ("report_batch_refused.json", ["state", "prepared", "status"], "state.prepared.status"),
    "start_run": ("start_run_quiet_check.json", ["quietCheck", "waiter"], "quietCheck.waiter is missing"),
}


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("function", sorted(MALFORMED))
def test_every_sample_event_fits_its_handlers_declared_input(function: str):
    accepted, _ = handler_types(function)
    event = sample(MALFORMED[function][0])
    options = get_args(accepted) if get_origin(accepted) in (Union, types.UnionType) else (accepted,)
    parse(options[0], event, what=function)


@pytest.mark.parametrize("function", sorted(MALFORMED))
def test_a_handler_refuses_a_malformed_input_naming_the_field(function: str, lambda_context, monkeypatch):
    for name in ("STACK_NAME", "INPUT_BUCKET", "OUTPUT_BUCKET", "MODELS_BUCKET", "COORDINATION_TABLE",
                 "NOTIFICATION_TOPIC_ARN", "BATCH_INSTANCE_TYPE", "PIPELINE_STATE_MACHINE_ARN",
                 "BATCH_WAITER_STATE_MACHINE_ARN"):  # fmt: skip
        monkeypatch.setenv(name, f"test-{name.lower()}")
    file, field, named = MALFORMED[function]
    event = copy.deepcopy(sample(file))
    holder = event
    for key in field[:-1]:
        holder = holder[key]
    del holder[field[-1]]

    with pytest.raises(StepInputError, match=re.escape(named)):
        load_function_module(function).lambda_handler(event, lambda_context)
