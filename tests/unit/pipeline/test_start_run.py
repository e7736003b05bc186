"""start_run against moto: real S3 objects, a real DynamoDB table, real state machines (not executed here:
the batch waiter's loop runs for real in tests/e2e/test_trigger.py). One run per upload batch, named by
content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_common.pipeline import batching, starter
from tests.conftest import load_function_module

from .conftest import ROLE_ARN, STACK, Stack, load_event

app = load_function_module("start_run")
NOW = 1_800_000_000_000  # epoch ms
CSV = "label,a\n1,2\n"


@pytest.fixture
def machines(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arns = {
        kind: stack.sfn.create_state_machine(name=f"{STACK}-{kind}", definition=definition, roleArn=ROLE_ARN)[
            "stateMachineArn"
        ]
        for kind in ("pipeline", "batch")
    }
    monkeypatch.setenv("PIPELINE_STATE_MACHINE_ARN", arns["pipeline"])
    monkeypatch.setenv("BATCH_WAITER_STATE_MACHINE_ARN", arns["batch"])
    monkeypatch.setenv("PIPELINE_DEFAULTS", json.dumps({"dataset_quiet_seconds": "30", "seed": "7"}))
    return arns


def settings() -> starter.Settings:
    import os

    return starter.Settings.from_env(os.environ)


def clients(stack: Stack) -> starter.Clients:
    return starter.Clients(s3=stack.s3, sfn=stack.sfn, ddb=stack.ddb)


def object_created(stack: Stack, key: str, put: dict) -> dict:
    event = load_event("start_run_object_created.json")
    event["detail"]["bucket"]["name"] = stack.input_bucket
    event["detail"]["object"].update(
        {"key": key, "version-id": put.get("VersionId"), "size": 12, "etag": put.get("ETag", "").strip('"')}
    )
    return event


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def upload(
    stack: Stack,
    key: str,
    body: str = CSV,
    now_ms: int = NOW,
    token: str = "a" * 32,
    uploaded_ms: int | None = None,
) -> dict:
    """One upload made at uploaded_ms (default: now_ms), its event handled at now_ms."""
    from mlops_common.pipeline import trigger

    put = stack.put(key, body)
    created = object_created(stack, key, put)
    created["time"] = iso(now_ms if uploaded_ms is None else uploaded_ms)
    [event] = trigger.parse_events(created)
    return starter.handle_object_event(
        event, clients=clients(stack), settings=settings(), now_ms=now_ms, token=token
    )


def marker(stack: Stack, dataset: str, body: str = "", lambda_context: Any = None) -> dict:
    put = stack.put(f"training/{dataset}/_READY", body)
    event = object_created(stack, f"training/{dataset}/_READY", put)
    event["detail"]["object"]["size"] = len(body)
    return app.lambda_handler(event, lambda_context)["results"][0]


def quiet_check(stack: Stack, waiter_result: dict, now_ms: int) -> dict:
    request = {"dataset": waiter_result["dataset"], "waiter": waiter_result["waiter"], "quietSeconds": 30}
    return starter.check_quiet_period(request, clients=clients(stack), settings=settings(), now_ms=now_ms)


def executions(stack: Stack, arn: str) -> list[dict]:
    return stack.sfn.list_executions(stateMachineArn=arn)["executions"]


def execution_input(stack: Stack, execution: dict) -> dict:
    return json.loads(stack.sfn.describe_execution(executionArn=execution["executionArn"])["input"])


def test_uploads_open_one_quiet_period_and_its_check_starts_one_run(stack, machines):
    first = upload(stack, "training/iris/part-1.csv")
    later = [
        upload(stack, f"training/iris/sub/part-{i}.csv", now_ms=NOW + i, token=f"{i:032x}")
        for i in range(2, 5)
    ]
    upload(stack, "validation/iris/v.csv", now_ms=NOW + 5, token="f" * 32)

    assert first["outcome"] == "waiting" and first["quietSeconds"] == 30
    assert {r["outcome"] for r in later} == {"recorded"} and {r["waiter"] for r in later} == {first["waiter"]}
    [waiter] = executions(stack, machines["batch"])
    assert waiter["name"] == first["waiter"]
    assert execution_input(stack, waiter) == {"dataset": "iris", "quietSeconds": 30, "waitSeconds": 30}
    assert executions(stack, machines["pipeline"]) == []

    early = quiet_check(stack, first, NOW + 10_000)
    assert (early["outcome"], early["waitSeconds"]) == ("waiting", 21)  # 30 s after the last upload, NOW+5 ms

    done = quiet_check(stack, first, NOW + 40_000)

    assert done["outcome"] == "started"
    [run] = executions(stack, machines["pipeline"])
    assert run["name"] == done["run"]["executionName"] and run["name"].startswith("iris-")
    run_input = execution_input(stack, run)
    assert run_input["trigger"] == "quiet-period" and run_input["runId"] == run["name"]
    bucket, key = run_input["manifest"].removeprefix("s3://").split("/", 1)
    assert (bucket, key) == (stack.output_bucket, f"runs/iris/{run['name']}/manifest.json")
    manifest = json.loads(stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert [(f["split"], f["key"]) for f in manifest["files"]] == [
        ("training", "training/iris/part-1.csv"),
        ("training", "training/iris/sub/part-2.csv"),
        ("training", "training/iris/sub/part-3.csv"),
        ("training", "training/iris/sub/part-4.csv"),
        ("validation", "validation/iris/v.csv"),
    ]
    assert all(f["versionId"] and f["etag"] and f["size"] == len(CSV) for f in manifest["files"])
    item = stack.ddb.get_item(TableName=f"{STACK}-coordination", Key=batching.item_key("iris"))["Item"]
    assert "waiter" not in item, "the quiet period is closed: the next upload opens a new one"


def test_identical_content_uploaded_again_starts_nothing_and_names_the_run(stack, machines, caplog):
    first = upload(stack, "training/iris/data.csv")
    started = quiet_check(stack, first, NOW + 60_000)["run"]["executionName"]

    again = upload(
        stack, "training/iris/data.csv", now_ms=NOW + 70_000, token="b" * 32
    )  # same bytes, new version
    assert again["outcome"] == "waiting", "a new quiet period"
    result = quiet_check(stack, again, NOW + 200_000)

    assert result["outcome"] == "identical"
    assert result["run"]["reason"].startswith(f"identical to run {started}")
    assert len(executions(stack, machines["pipeline"])) == 1


def test_changed_bytes_or_configuration_are_a_new_run(stack, machines, monkeypatch):
    first = upload(stack, "training/iris/data.csv")
    one = quiet_check(stack, first, NOW + 60_000)["run"]["executionName"]
    changed = upload(stack, "training/iris/data.csv", "label,a\n3,4\n", now_ms=NOW + 70_000, token="b" * 32)
    two = quiet_check(stack, changed, NOW + 200_000)["run"]["executionName"]
    monkeypatch.setenv("PIPELINE_DEFAULTS", json.dumps({"dataset_quiet_seconds": "30", "seed": "8"}))
    reconfigured = upload(
        stack, "training/iris/pipeline.json", '{"target_column": "a"}', now_ms=NOW + 300_000, token="c" * 32
    )
    three = quiet_check(stack, reconfigured, NOW + 400_000)["run"]["executionName"]

    assert len({one, two, three}) == 3
    assert len(executions(stack, machines["pipeline"])) == 3


def test_the_quiet_time_alone_does_not_change_the_identity(stack, machines, monkeypatch):
    first = upload(stack, "training/iris/data.csv")
    quiet_check(stack, first, NOW + 60_000)
    monkeypatch.setenv("PIPELINE_DEFAULTS", json.dumps({"dataset_quiet_seconds": "90", "seed": "7"}))
    again = upload(stack, "training/iris/data.csv", now_ms=NOW + 70_000, token="b" * 32)
    assert quiet_check(stack, again, NOW + 200_000)["outcome"] == "identical"


def test_a_marker_starts_at_once_and_force_starts_a_new_run_once(stack, machines, lambda_context):
    stack.put("training/shards/part-1/a.csv", CSV)
    stack.put("training/shards/part-2/b.csv", "label,a\n5,6\n")

    first = marker(stack, "shards", lambda_context=lambda_context)
    same = marker(stack, "shards", lambda_context=lambda_context)
    forced = marker(stack, "shards", '{"force": true}', lambda_context)

    assert (first["outcome"], first["files"], first["force"]) == ("started", 2, False)
    assert same["outcome"] == "identical" and same["executionName"] == first["executionName"]
    assert forced["outcome"] == "started" and forced["executionName"] != first["executionName"]
    assert len(executions(stack, machines["pipeline"])) == 2


def test_a_redelivered_forced_marker_starts_one_run(stack, machines, lambda_context):
    stack.put("training/shards/a.csv", CSV)
    put = stack.put("training/shards/_READY", '{"force": true}')
    event = object_created(stack, "training/shards/_READY", put)
    outcomes = [app.lambda_handler(event, lambda_context)["results"][0]["outcome"] for _ in range(3)]
    assert outcomes == ["started", "identical", "identical"]


def test_a_check_that_races_a_new_upload_keeps_waiting(stack, machines):
    first = upload(stack, "training/iris/data.csv")
    check = batching.check_quiet(
        stack.ddb,
        f"{STACK}-coordination",
        "iris",
        waiter=first["waiter"],
        quiet_seconds=30,
        now_ms=NOW + 60_000,
    )
    assert check.outcome == "quiet"
    upload(stack, "training/iris/late.csv", now_ms=NOW + 60_001, token="b" * 32)  # lands before the close

    closed = batching.close_quiet_period(
        stack.ddb, f"{STACK}-coordination", "iris", waiter=first["waiter"], uploads_seen=check.uploads
    )

    assert closed is False
    again = quiet_check(stack, first, NOW + 60_002)
    assert again["outcome"] == "waiting", "the same waiter covers the late upload"


def test_a_dead_waiter_is_taken_over_by_the_next_upload_after_its_heartbeat_ages(stack, machines):
    first = upload(stack, "training/iris/data.csv")
    stack.sfn.stop_execution(executionArn=executions(stack, machines["batch"])[0]["executionArn"])

    soon = upload(stack, "training/iris/b.csv", now_ms=NOW + 60_000, token="b" * 32)
    late = upload(
        stack,
        "training/iris/c.csv",
        now_ms=NOW + (30 + batching.STALE_AFTER_SECONDS + 1) * 1000,
        token="c" * 32,
    )

    assert soon["outcome"] == "recorded"
    assert late["outcome"] == "waiting" and late["waiter"] != first["waiter"]
    assert quiet_check(stack, first, NOW + 10**7)["outcome"] == "superseded"


def test_a_waiter_that_could_not_start_frees_its_slot_for_the_retry(stack, machines):
    from botocore.stub import Stubber

    stub_sfn = __import__("boto3").client("stepfunctions", region_name="us-east-1")
    put = stack.put("training/iris/data.csv", CSV)
    from mlops_common.pipeline import trigger

    [event] = trigger.parse_events(object_created(stack, "training/iris/data.csv", put))
    broken = starter.Clients(s3=stack.s3, sfn=stub_sfn, ddb=stack.ddb)
    with Stubber(stub_sfn) as stubbed, pytest.raises(stub_sfn.exceptions.ClientError, match="Throttling"):
        stubbed.add_client_error("start_execution", "ThrottlingException", http_status_code=400)
        starter.handle_object_event(event, clients=broken, settings=settings(), now_ms=NOW, token="a" * 32)

    retried = starter.handle_object_event(
        event, clients=clients(stack), settings=settings(), now_ms=NOW + 1, token="b" * 32
    )
    assert retried["outcome"] == "waiting"
    assert [e["name"] for e in executions(stack, machines["batch"])] == [retried["waiter"]]


def test_pipeline_json_sets_the_datasets_quiet_time_and_a_bad_one_falls_back(stack, machines):
    stack.put("training/slow/pipeline.json", json.dumps({"dataset_quiet_seconds": 600}))
    stack.put("training/broken/pipeline.json", "{not json")
    slow = upload(stack, "training/slow/a.csv")
    broken = upload(stack, "training/broken/a.csv", token="b" * 32)
    assert slow["quietSeconds"] == 600
    assert broken["quietSeconds"] == 30 and "not valid JSON" in broken["configProblem"]


def test_only_a_split_so_far_starts_no_run(stack, machines):
    first = upload(stack, "validation/later/v.csv")
    assert quiet_check(stack, first, NOW + 60_000)["outcome"] == "empty"
    assert executions(stack, machines["pipeline"]) == []


@pytest.mark.parametrize(
    "key",
    [
        "training/iris/",
        "training/iris/readme.docx",
        "training/iris.csv",
        "other/iris/iris.csv",
        "recipes/iris/x.csv",
    ],
)
def test_ignored_objects_start_nothing_and_say_why(stack, machines, lambda_context, key):
    put = stack.put(key, "{}")
    result = app.lambda_handler(object_created(stack, key, put), lambda_context)["results"][0]
    assert result["outcome"] == "ignored" and result["reason"]
    assert executions(stack, machines["batch"]) == executions(stack, machines["pipeline"]) == []


def test_url_encoded_keys_with_spaces_unicode_and_plus_resolve_to_the_real_object(
    stack, machines, lambda_context
):
    real_key = "training/house prices/sales (été)+1.csv"
    put = stack.put(real_key, CSV)
    event = load_event("start_run_s3_notification.json")
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = stack.input_bucket
    record["object"].update(
        {"key": "training/house+prices/sales+%28%C3%A9t%C3%A9%29%2B1.csv", "versionId": put["VersionId"]}
    )

    result = app.lambda_handler(event, lambda_context)["results"][0]

    assert result["outcome"] == "waiting", result
    assert result["key"] == real_key and result["dataset"] == "house prices"


def test_the_quiet_check_event_runs_through_the_handler(stack, machines, lambda_context):
    import time

    first = upload(stack, "training/iris/data.csv", now_ms=0)  # its event long ago
    event = load_event("start_run_quiet_check.json")
    event["quietCheck"].update({"waiter": first["waiter"], "quietSeconds": 1})
    time.sleep(2.1)  # and the object itself quiet for the quiet time (S3 times are whole seconds)
    result = app.lambda_handler(event, lambda_context)
    assert result["outcome"] == "started" and result["waitSeconds"] == 1


def test_a_failed_start_is_logged_and_raised_for_the_retry(stack, machines, lambda_context, caplog):
    from botocore.stub import ANY, Stubber

    from mlops_common.aws import client

    stack.put("training/iris/iris.csv", CSV)
    put = stack.put("training/iris/_READY", "")
    sfn = client("stepfunctions")
    with Stubber(sfn) as stubbed:  # moto cannot throttle: the Stubber plays Step Functions here
        stubbed.add_client_error("describe_execution", "ExecutionDoesNotExist")
        stubbed.add_client_error(
            "start_execution",
            "ThrottlingException",
            http_status_code=400,
            expected_params={"stateMachineArn": ANY, "name": ANY, "input": ANY},
        )
        with pytest.raises(sfn.exceptions.ClientError, match="ThrottlingException"):
            app.lambda_handler(object_created(stack, "training/iris/_READY", put), lambda_context)
    assert "the event will be retried" in caplog.text


def test_a_backlog_of_events_does_not_split_a_batch_and_a_late_old_event_keeps_the_latest_time(
    stack, machines
):
    first = upload(stack, "training/slow/a.csv", now_ms=NOW, uploaded_ms=NOW)
    # The second file was uploaded 1 s later, but its event is handled 50 s late (a throttled backlog).
    upload(stack, "training/slow/b.csv", now_ms=NOW + 50_000, uploaded_ms=NOW + 1_000, token="b" * 32)
    upload(stack, "training/slow/c.csv", now_ms=NOW + 50_001, uploaded_ms=NOW + 500, token="c" * 32)  # older

    result = quiet_check(stack, first, NOW + 31_001)  # 30 s after the latest upload, not after the handling

    assert result["outcome"] == "started" and result["run"]["files"] == 3
    item = stack.ddb.get_item(TableName=f"{STACK}-coordination", Key=batching.item_key("slow"))["Item"]
    assert item["lastUploadAt"]["N"] == str(NOW + 1_000) and item["uploads"]["N"] == "3"


def test_a_quiet_check_waits_for_files_in_the_bucket_whose_events_are_still_queued(stack, machines):
    import time

    # The one event handled so far is a minute old; the sync goes on, its events queued behind a backlog.
    first = upload(stack, "training/synced/part-1.csv", now_ms=int(time.time() * 1000) - 60_000)
    stack.put("training/synced/part-2.csv", CSV)  # written just now, no event handled yet
    now = int(time.time() * 1000)  # after both writes: a slow machine must not stretch the expected wait

    waiting = quiet_check(stack, first, now)

    assert waiting["outcome"] == "waiting" and 29 <= waiting["waitSeconds"] <= 31
    assert executions(stack, machines["pipeline"]) == []
    done = quiet_check(stack, first, now + 32_000)
    assert done["outcome"] == "started" and done["run"]["files"] == 2


def test_an_event_time_in_whole_seconds_counts_from_the_end_of_that_second():
    from mlops_common.pipeline import trigger

    def event(time: str | None) -> trigger.ObjectEvent:
        return trigger.ObjectEvent("b", "training/d/x.csv", 5, "e", None, "s", time)

    whole = int(datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp() * 1000)
    assert starter.upload_time_ms(event("2027-01-15T08:00:00Z"), 1) == whole + 999
    assert starter.upload_time_ms(event("2027-01-15T08:00:00.250Z"), 1) == whole + 250
    assert starter.upload_time_ms(event(None), 42) == 42
    assert starter.upload_time_ms(event("yesterday"), 42) == 42
