"""The Lambda invoke seam: handlers run in-process from their deployment package, with layers, env, context
and Lambda errors."""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction

from offline.seams.state import OfflineState
from tests.unit.offline.conftest import aws, create_function, invoke, make_zip

HANDLER = """
import os
import boto3
import shared_helper

def handler(event, context):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=event["bucket"], Key="from-handler.txt", Body=os.environ["GREETING"].encode())
    return {
        "greeting": os.environ["GREETING"],
        "helper": shared_helper.NAME,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
    }
"""

FAILING = """
class DatasetRejected(Exception):
    pass

def handler(event, context):
    raise DatasetRejected("target column 'label' missing in train.csv")
"""


def test_handler_runs_with_layer_env_and_context(offline_state: OfflineState) -> None:
    aws("s3").create_bucket(Bucket="data")
    layer_arn = aws("lambda").publish_layer_version(
        LayerName="common",
        Content={"ZipFile": make_zip({"python/shared_helper.py": "NAME = 'from-layer'\n"})},
    )["LayerVersionArn"]
    create_function(
        "greeter",
        {"app.py": HANDLER},
        Layers=[layer_arn],
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello offline"}},
    )
    os.environ.pop("GREETING", None)

    body, error = invoke("greeter", {"bucket": "data"})

    assert error is None, body
    assert body["greeting"] == "hello offline"
    assert body["helper"] == "from-layer"
    assert body["function_name"] == "greeter"
    assert body["memory"] == 256
    assert 25_000 < body["remaining_ms"] <= 30_000
    assert body["arn"].endswith(":function:greeter")
    # the handler's boto3 call reached the same emulator
    stored = aws("s3").get_object(Bucket="data", Key="from-handler.txt")["Body"].read()
    assert stored == b"hello offline"
    # env restored after the call; the package was extracted once under the work dir
    assert "GREETING" not in os.environ
    assert len(list((offline_state.work_dir / "lambda").glob("greeter-*"))) == 1


def test_exception_becomes_lambda_error_payload(offline_state: OfflineState) -> None:
    create_function("failing", {"app.py": FAILING})

    body, error = invoke("failing", {})

    assert error is not None
    assert body["errorType"] == "DatasetRejected"
    assert "target column 'label'" in body["errorMessage"]
    assert any("app.py" in line for line in body["stackTrace"])


def test_missing_handler_is_reported_as_lambda_error(offline_state: OfflineState) -> None:
    create_function("nohandler", {"other.py": "x = 1\n"})

    body, error = invoke("nohandler", {})

    assert error is not None
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in body["errorMessage"]


def test_each_function_gets_its_own_module(offline_state: OfflineState) -> None:
    for name, value in (("one", 1), ("two", 2)):
        create_function(name, {"app.py": f"def handler(event, context):\n    return {value}\n"})

    assert invoke("one", {})[0] == 1
    assert invoke("two", {})[0] == 2


def test_registered_code_dir_is_used_instead_of_the_package(
    offline_state: OfflineState, tmp_path: Any
) -> None:
    code = tmp_path / "build" / "Fn"
    layer = tmp_path / "build" / "Layer" / "python"
    code.mkdir(parents=True)
    layer.mkdir(parents=True)
    (code / "app.py").write_text("import shared_helper\ndef handler(e, c):\n    return shared_helper.NAME\n")
    (layer / "shared_helper.py").write_text("NAME = 'registered layer'\n")

    class Code:
        code_dir = code
        layer_dirs = (layer.parent,)

    offline_state.registry.register_functions({"registered": Code()})
    create_function("registered", {"app.py": "def handler(e, c):\n    return 'package'\n"})

    assert invoke("registered", {})[0] == "registered layer"


def test_step_functions_task_failure_carries_error_type(offline_state: OfflineState) -> None:
    arn = create_function("failing", {"app.py": FAILING})
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "End": True,
            }
        },
    }
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(
        name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")["executionArn"]
    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert described["status"] == "FAILED"
    assert described["error"] == "DatasetRejected"


def test_gap_moto_without_seam_runs_no_code(plain_moto: None) -> None:
    """If moto starts running code without Docker, this seam may be obsolete: revisit it."""
    create_function("echo", {"app.py": "def handler(e, c):\n    return 'ran'\n"})
    body, _ = invoke("echo", {"x": 1})
    assert body == {"x": 1}


def test_patched_moto_method_keeps_its_shape() -> None:
    params = list(inspect.signature(LambdaFunction._invoke_lambda).parameters)
    assert params == ["self", "event"]
    assert "Layers" not in inspect.getsource(LambdaFunction.create_from_cloudformation_json)


LOGGING = """
import json
import logging
import sys

logger = logging.getLogger("svc")
logger.setLevel(logging.INFO)
if not logger.handlers:
    # the way Powertools' Logger marks its handler (it writes JSON lines to stdout)
    logger.powertools_handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(logger.powertools_handler)

def handler(event, context):
    logger.info(json.dumps({"message": "run prepared", "correlation_id": event["run"]}))
    metric = {"_aws": {"Timestamp": 1796104058906, "CloudWatchMetrics": [{"Namespace": "Offline/Test",
              "Dimensions": [["service"]], "Metrics": [{"Name": "RunsStarted", "Unit": "Count"}]}]},
              "service": "pipeline", "RunsStarted": [1.0]}
    print(json.dumps(metric))
    if event.get("fail"):
        raise ValueError("bad input")
    return {"ok": True}
"""


def _log_lines(function: str) -> list[list[str]]:
    logs = aws("logs")
    group = f"/aws/lambda/{function}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    return [
        [
            e["message"]
            for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"])["events"]
        ]
        for s in streams
    ]


def test_what_the_handler_prints_and_logs_goes_to_its_log_stream_and_emf_to_metrics(
    offline_state: OfflineState,
) -> None:
    create_function("logging", {"app.py": LOGGING})

    assert invoke("logging", {"run": "iris-1"})[1] is None
    assert invoke("logging", {"run": "iris-2", "fail": True})[1] is not None

    by_run = {next(line for line in lines if "iris-" in line): lines for lines in _log_lines("logging")}
    [first] = [lines for key, lines in by_run.items() if "iris-1" in key]
    assert first[0].startswith("START RequestId: ") and first[-1].startswith("END RequestId: ")
    assert json.loads(first[1]) == {"message": "run prepared", "correlation_id": "iris-1"}
    assert json.loads(first[2])["RunsStarted"] == [1.0]
    # the second invocation (module already imported): its own lines, then Lambda's error report
    [second] = [lines for key, lines in by_run.items() if "iris-2" in key]
    assert json.loads(second[1])["correlation_id"] == "iris-2"
    assert any(line == "[ERROR] ValueError: bad input" for line in second)
    points = aws("cloudwatch").get_metric_statistics(
        Namespace="Offline/Test",
        MetricName="RunsStarted",
        Dimensions=[{"Name": "service", "Value": "pipeline"}],
        StartTime=1796104000,
        EndTime=1796104100,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in points) == 2.0


def test_a_logger_whose_stream_was_closed_since_import_does_not_fail_the_invocation(
    offline_state: OfflineState,
) -> None:
    # A Powertools logger created while a test session captured stdout keeps that capture, closed later.
    create_function("closed", {"app.py": LOGGING.replace('getLogger("svc")', 'getLogger("closed-svc")')})
    assert invoke("closed", {"run": "iris-3"})[1] is None
    import logging

    handler = logging.getLogger("closed-svc").powertools_handler  # type: ignore[attr-defined]
    closed = Path(os.devnull).open("w")  # noqa: SIM115 - closed at once: a file whose flush then raises
    closed.close()
    handler.stream = closed

    body, error = invoke("closed", {"run": "iris-4"})
    assert error is None, body
    assert any("iris-4" in line for lines in _log_lines("closed") for line in lines)
    assert handler.stream is closed  # given back as it was: not this seam's stream to replace
