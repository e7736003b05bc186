"""The values the workflows pass between their steps, as typed models.

Every state document (`PipelineState`, `DeployState`, `BatchState`, `BatchWaiterState`), every Lambda
step's input and result is a TypedDict here: the JSON the ASL reads, keys in camelCase. The exceptions are
what AWS or the user defines: SageMaker request and response fields keep SageMaker's PascalCase (marked with
`ApiShape`, the botocore shape they follow), and `RunState.config` is the user's `pipeline.json` after
defaults (snake_case, as documented in docs/pipeline.md). Handlers call `parse` on entry and on their result,
so a field renamed on one side fails where it is read, with the field's path in the message;
tests/unit/pipeline/test_step_values.py resolves every JSONPath of statemachines/*.asl.json against these
models.

TypedDicts cost nothing to import (no pydantic on the Lambdas' cold path) and stay plain JSON at runtime.
"""

import types
from dataclasses import dataclass
from functools import cache
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
    is_typeddict,
)


class StepInputError(ValueError):
    """A step received (or built) a value that is not its model; the message names the field."""


@dataclass(frozen=True)
class ApiShape:
    """Marks a value that follows a botocore shape (SageMaker's own request or response fields)."""

    service: str
    shape: str


type ProcessingJobRequest = Annotated[dict[str, Any], ApiShape("sagemaker", "CreateProcessingJobRequest")]
type TrainingJobRequest = Annotated[dict[str, Any], ApiShape("sagemaker", "CreateTrainingJobRequest")]
type ProcessingJobDescription = Annotated[
    dict[str, Any], ApiShape("sagemaker", "DescribeProcessingJobResponse")
]
type TrainingJobDescription = Annotated[dict[str, Any], ApiShape("sagemaker", "DescribeTrainingJobResponse")]
type EndpointDescription = Annotated[dict[str, Any], ApiShape("sagemaker", "DescribeEndpointOutput")]
type EndpointUpdate = Annotated[dict[str, Any], ApiShape("sagemaker", "UpdateEndpointOutput")]
type ContainerDefinition = Annotated[dict[str, Any], ApiShape("sagemaker", "ContainerDefinition")]
type DeploymentConfig = Annotated[dict[str, Any], ApiShape("sagemaker", "DeploymentConfig")]
type ServerlessConfig = Annotated[dict[str, Any], ApiShape("sagemaker", "ProductionVariantServerlessConfig")]
type TransformRequest = Annotated[dict[str, Any], ApiShape("sagemaker", "CreateTransformJobRequest")]
type Tag = Annotated[dict[str, Any], ApiShape("sagemaker", "Tag")]


class StepError(TypedDict):
    """What a Catch records at `$.error`."""

    Error: str
    Cause: NotRequired[str]


# ------------------------------------------------------------------------------------------ the pipeline run


class RunStart(TypedDict):
    """The pipeline's execution input, from start_run (events/pipeline_execution_input.json)."""

    runId: str
    bucket: str
    dataset: str
    manifest: str
    trigger: NotRequired[str]


class RunSource(TypedDict):
    bucket: str
    manifest: str
    trigger: str


class RunData(TypedDict):
    format: str
    contentType: str
    tabular: bool
    files: int
    validationProvided: bool
    testProvided: bool
    servingContentTypes: list[str]


class RunCode(TypedDict):
    hash: str
    sourceDir: str
    src: str


class RunNames(TypedDict):
    jobPrefix: str
    experiment: str
    trial: str
    modelPackageGroup: str
    endpoint: str


class RunPaths(TypedDict):
    data: str
    train: str
    validation: str
    test: str
    schema: str
    evaluation: str
    report: str
    model: str
    checkpoints: str


class RunJobs(TypedDict):
    """The three job requests minus their names (each state adds a fresh name per attempt)."""

    process: ProcessingJobRequest
    train: TrainingJobRequest
    evaluate: ProcessingJobRequest


class StageEndpoints(TypedDict, total=False):
    staging: str
    prod: Required[str]


class RunStages(TypedDict):
    """Where a passing model goes (docs/stages.md): prod only, or staging, a soak, then prod."""

    mode: Literal["single", "staging-prod"]
    first: Literal["staging"] | None
    endpoints: StageEndpoints
    promotion: NotRequired[Literal["manual", "automatic"]]
    soakSeconds: NotRequired[int]


class RunState(TypedDict):
    """PrepareRun's result, at `$.run`: everything later steps need about the run."""

    runId: str
    dataset: str
    region: str
    source: RunSource
    config: dict[str, Any]
    configFile: bool
    data: RunData
    image: str
    code: RunCode
    names: RunNames
    paths: RunPaths
    jobs: RunJobs
    stages: RunStages


class QualityGateInput(TypedDict):
    run: RunState


class GateDecision(TypedDict):
    """QualityGate's result, at `$.gate`."""

    passed: bool
    metric: str
    value: float
    threshold: float | None
    championValue: float | None
    championPackageArn: str | None
    reason: str
    metrics: dict[str, float]
    problemType: str | None
    evaluationUri: str


class RegisterModelInput(TypedDict):
    run: RunState
    gate: GateDecision
    modelDataUrl: str


class Registration(TypedDict):
    """RegisterModel's result, at `$.registration`."""

    modelPackageArn: str
    approvalStatus: str
    modelPackageGroup: str
    reused: bool


# --------------------------------------------------------------------------------------------- the deployment

type DeploySource = Literal["pipeline", "approval", "rollback", "promotion"]
type Stage = Literal["staging", "prod"]


class DeployInput(TypedDict):
    """The deploy workflow's execution input (from the pipeline, the approval listener or `mlops`)."""

    modelPackageArn: str
    source: NotRequired[DeploySource]
    runId: NotRequired[str]
    endpointName: NotRequired[str]
    stage: NotRequired[Stage | None]  # None: the pipeline's single stage


class PrepareDeploymentInput(TypedDict):
    input: DeployInput
    executionArn: str


class DeployNames(TypedDict):
    prefix: str


class SmokeSettings(TypedDict):
    testDataUri: str | None
    schemaUri: str | None
    rows: int
    metrics: dict[str, float]


class DeployVariant(TypedDict):
    """One production variant of the endpoint config: instance-backed or serverless."""

    VariantName: str
    InstanceType: NotRequired[str]
    InitialInstanceCount: NotRequired[int]
    InitialVariantWeight: NotRequired[float]
    ServerlessConfig: NotRequired[ServerlessConfig]


class DeployPlan(TypedDict):
    """PrepareDeployment's result, at `$.deploy`: "waiting" (another rollout holds the endpoint),
    "superseded" (a better model serves) or "ready" (the rollout's requests)."""

    packageArn: str
    source: DeploySource
    stage: Stage | None
    dataset: str
    runId: str
    endpointName: str
    waitSeconds: int
    status: Literal["waiting", "superseded", "ready"]
    heldBy: NotRequired[str | None]
    heldFor: NotRequired[str | None]
    reason: NotRequired[str]
    championPackageArn: NotRequired[str | None]
    endpointArn: NotRequired[str]
    action: NotRequired[Literal["create", "update"]]
    serverless: NotRequired[bool]
    previousConfig: NotRequired[str | None]
    names: NotRequired[DeployNames]
    container: NotRequired[ContainerDefinition]
    variant: NotRequired[DeployVariant]
    deploymentConfig: NotRequired[DeploymentConfig | None]
    alarms: NotRequired[list[str]]
    maxPolls: NotRequired[int]
    smoke: NotRequired[SmokeSettings]
    tags: NotRequired[list[Tag]]
    servingTags: NotRequired[list[Tag]]


class CreatedResource(TypedDict):
    """A model or endpoint config the workflow created (ResultSelector of its Create call)."""

    arn: NotRequired[str]
    name: str


class PollCount(TypedDict):
    count: int


class SmokeTestInput(TypedDict):
    endpointName: str
    packageArn: str
    smoke: SmokeSettings


class SmokeResult(TypedDict):
    """SmokeTest's result, at `$.smoke`: rows sent and the verdict (classification or regression)."""

    endpointName: str
    rows: int
    skipped: NotRequired[bool]
    agreement: NotRequired[float]
    evaluatedAccuracy: NotRequired[float | None]
    probabilityAtTolerance: NotRequired[float]
    rmse: NotRequired[float]
    evaluatedRmse: NotRequired[float | None]
    rmseBound: NotRequired[float]
    predictions: NotRequired[list[Any]]


class DeploymentFinish(TypedDict):
    """FinishDeployment's result, at `$.finished`."""

    outcome: str
    detail: str
    released: bool
    recorded: bool
    note: NotRequired[str]


class Notification(TypedDict, total=False):
    """Notify's result, at `$.notification`: the message sent; on a failure also the Fail state's error and
    cause."""

    outcome: str
    error: str
    cause: str
    step: str
    dataset: str | None
    runId: str | None


class DeployOutcome(TypedDict, total=False):
    """The deploy workflow's output (its Deployed or Superseded state), at the pipeline's
    `$.deployment.output`."""

    outcome: Required[Literal["deployed", "superseded"]]
    endpointName: str
    endpointConfigName: str
    modelName: str
    modelPackageArn: str
    action: str
    smokeTest: SmokeResult
    stage: Stage | None
    championPackageArn: str | None
    reason: str


class DeploymentResult(TypedDict):
    """DeployModel's result (ResultSelector of the nested execution), at the pipeline's `$.deployment`."""

    executionArn: str
    output: DeployOutcome


class DeployState(TypedDict, total=False):
    """The deploy workflow's state document: its input, then each step's result under its own key."""

    modelPackageArn: str
    source: DeploySource
    runId: str
    endpointName: str
    AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: str
    deploy: DeployPlan
    model: CreatedResource
    endpointConfig: CreatedResource
    poll: PollCount
    endpoint: EndpointDescription
    smoke: SmokeResult
    restored: EndpointUpdate
    finished: DeploymentFinish
    notification: Notification
    failedStep: str
    error: StepError
    restoreError: StepError
    finishError: StepError
    notifyError: StepError


class FinishDeploymentInput(TypedDict):
    outcome: Literal["deployed", "failed", "superseded"]
    state: DeployState
    executionArn: str


class SoakCheckInput(TypedDict):
    runId: str
    endpointName: str
    soakSeconds: int


class SoakCheck(TypedDict):
    """CheckStagingSoak's result, at `$.soak`: the staging endpoint's invocation errors over the soak."""

    endpointName: str
    soakSeconds: int
    errors: dict[str, float]
    passed: bool


class PipelineState(TypedDict, total=False):
    """The pipeline's state document: its input (RunStart), then each step's result under its own key.
    The input's fields are repeated as optional: a run whose input was malformed must still be notified."""

    runId: str
    bucket: str
    dataset: str
    manifest: str
    trigger: str
    run: RunState
    process: ProcessingJobDescription
    train: TrainingJobDescription
    evaluate: ProcessingJobDescription
    gate: GateDecision
    registration: Registration
    deployment: DeploymentResult
    soak: SoakCheck
    promotion: DeploymentResult
    notification: Notification
    failedStep: str
    error: StepError
    notifyError: StepError


class NotifyInput(TypedDict):
    outcome: Literal[
        "succeeded", "superseded", "pending_approval", "staged", "failed", "deployed", "deploy_failed"
    ]
    state: PipelineState | DeployState
    executionArn: NotRequired[str]


# ------------------------------------------------------------------------------------------ batch predictions


class BatchStart(TypedDict):
    """The batch workflow's execution input, from start_batch."""

    batchId: str
    dataset: str
    trigger: str
    inputPrefix: str
    bucket: str
    key: str
    versionId: str | None
    eventTime: str | None


class BatchModel(TypedDict):
    packageArn: str
    source: str
    endpointName: str | None


class PreparedBatch(TypedDict):
    """PrepareBatch's result, at `$.prepared`: "ready" with the transform's requests, or "refused"."""

    dataset: str
    batchId: str
    inputPrefix: str
    status: Literal["ready", "refused"]
    reason: NotRequired[str]
    model: NotRequired[BatchModel]
    inputs: NotRequired[list[Any]]
    skipped: NotRequired[list[Any]]
    outputBucket: NotRequired[str]
    outputUri: NotRequired[str]
    namePrefix: NotRequired[str]
    container: NotRequired[ContainerDefinition]
    transform: NotRequired[TransformRequest]
    tags: NotRequired[list[Tag]]


class TransformSummary(TypedDict):
    """RunTransform's result (ResultSelector of the job's description), at `$.transform`."""

    name: str
    status: str
    startTime: Any
    endTime: Any


class BatchState(TypedDict, total=False):
    batchId: str
    dataset: str
    trigger: str
    inputPrefix: str
    bucket: str
    key: str
    versionId: str | None
    eventTime: str | None
    prepared: PreparedBatch
    model: CreatedResource
    transform: TransformSummary
    notification: Notification
    failedStep: str
    error: StepError
    cleanupError: StepError
    notifyError: StepError


class ReportBatchInput(TypedDict):
    outcome: Literal["predicted", "refused", "failed"]
    state: BatchState


# ---------------------------------------------------------------------------------- a dataset's quiet period


class QuietCheck(TypedDict):
    dataset: str
    quietSeconds: int
    waiter: str


class QuietCheckInput(TypedDict):
    """The batch waiter's call of start_run (its other events are S3 notifications)."""

    quietCheck: QuietCheck


class BatchWaiterState(TypedDict):
    """The batch waiter's state document; the quiet check's result replaces it each time."""

    dataset: str
    quietSeconds: int
    waitSeconds: int
    outcome: NotRequired[str]
    run: NotRequired[dict[str, Any]]
    error: NotRequired[StepError]


# ---------------------------------------------------------------------------------- operators' invocations
# Payloads people send with `aws lambda invoke` (documented in docs/cost-guard.md and docs/pipeline.md); their
# snake_case keys are part of that documented interface.


class RestoreRequest(TypedDict):
    endpoint_name: str


class RedriveRequest(TypedDict, total=False):
    max_messages: int


# -------------------------------------------------------------------------------------------------- checking


def parse[T](model: type[T], value: object, *, what: str) -> T:
    """`value` as `model`, or StepInputError naming every field that does not fit (extra keys are allowed:
    a state document carries more than one step reads)."""
    problems = _problems(model, value, "")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise StepInputError(f"{what}: {shown}")
    return value  # type: ignore[return-value]  # checked above, field by field


@cache
def fields(model: type) -> dict[str, Any]:
    """A TypedDict's fields with their annotations (Annotated and NotRequired kept)."""
    return get_type_hints(model, include_extras=True)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value}"
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value))
    return kind or type(value).__name__


def _expected(model: Any) -> str:
    if isinstance(model, TypeAliasType):
        model = model.__value__
    if is_typeddict(model):
        return f"an object ({model.__name__})"
    origin = get_origin(model)
    if origin is Literal:
        return " or ".join(repr(arg) for arg in get_args(model))
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in get_args(model))
    if origin in (dict, list):
        return {dict: "an object", list: "a list"}[origin]
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(
        model, "null" if model is type(None) else str(model)
    )


def _problems(model: Any, value: object, path: str) -> list[str]:
    """What does not fit, each with its field's path ("run.paths.test is missing")."""
    if isinstance(model, TypeAliasType):
        model = model.__value__
    origin = get_origin(model)
    if model is Any:
        return []
    if origin in (Annotated, NotRequired, Required):
        return _problems(get_args(model)[0], value, path)
    if origin in (Union, types.UnionType):
        return _union_problems(model, value, path)
    if is_typeddict(model):
        return _object_problems(model, value, path)
    if origin in (list, dict):
        return _collection_problems(model, value, path)
    if origin is Literal:
        fits = value in get_args(model)
    elif model in (int, float):  # JSON has one number type; a boolean is not a number
        fits = isinstance(value, int if model is int else int | float) and not isinstance(value, bool)
    elif model is type(None):
        fits = value is None
    else:
        fits = isinstance(value, model)
    shown = repr(value) if origin is Literal else _describe(value)
    return [] if fits else [f"{path or 'the value'} is {shown}, expected {_expected(model)}"]


def _union_problems(model: Any, value: object, path: str) -> list[str]:
    members = get_args(model)
    if any(not _problems(member, value, path) for member in members):
        return []
    objects = [member for member in members if is_typeddict(member)]
    if isinstance(value, dict) and objects:  # name the fields of the object it comes closest to
        return min((_problems(member, value, path) for member in objects), key=len)
    return [f"{path or 'the value'} is {_describe(value)}, expected {_expected(model)}"]


def _object_problems(model: Any, value: object, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path or 'the value'} is {_describe(value)}, expected {_expected(model)}"]
    problems = []
    for key, annotation in fields(model).items():
        inner = f"{path}.{key}" if path else key
        if key in value:
            problems += _problems(annotation, value[key], inner)
        elif key in model.__required_keys__:
            problems.append(f"{inner} is missing")
    return problems


def _collection_problems(model: Any, value: object, path: str) -> list[str]:
    origin, item = get_origin(model), get_args(model)[-1]
    if not isinstance(value, origin):
        return [f"{path or 'the value'} is {_describe(value)}, expected {_expected(model)}"]
    if isinstance(value, list):
        return [
            problem for i, element in enumerate(value) for problem in _problems(item, element, f"{path}[{i}]")
        ]
    return [
        problem for key, element in value.items() for problem in _problems(item, element, f"{path}.{key}")
    ]
