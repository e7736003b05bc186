"""prepare_run against moto: it copies the manifest's object versions, reads pipeline.json, uploads the
recipe, builds the jobs, which read only the run's copies."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from mlops_common.pipeline import naming, snapshot
from mlops_common.pipeline.prepare import DatasetNotFoundError, ManifestError, RecipeRequiredError
from mlops_common.pipeline.run_config import InvalidConfigError
from tests.conftest import load_function_module

from .conftest import STACK, Stack, serve_package
from .conftest import run_input as started_run

app = load_function_module("prepare_run")
CSV = "sepal,petal,label\n5.1,1.4,setosa\n6.2,4.5,versicolor\n"


def run_input(stack: Stack, key: str = "training/iris/iris.csv", trigger: str = "marker") -> dict:
    """The execution input start_run sends for the dataset of `key` (its manifest written)."""
    return started_run(stack, key.split("/")[1], trigger)


def snapshot_uri(stack: Stack, run: dict, split: str) -> str:
    return f"s3://{stack.output_bucket}/{snapshot.snapshot_prefix(run['dataset'], run['runId'], split)}"


def input_named(job: dict, name: str) -> dict:
    return next(i for i in job["ProcessingInputs"] if i["InputName"] == name)["S3Input"]


def test_a_csv_dataset_gets_a_complete_plan(stack, lambda_context):
    from mlops_common.aws import client

    stack.put("training/iris/iris.csv", CSV)
    event = run_input(stack)
    trial_requests: list[dict] = []
    # moto's CreateTrial drops its Tags: read the request instead.
    client("sagemaker").meta.events.register(
        "provide-client-params.sagemaker.CreateTrial", lambda params, **_: trial_requests.append(params)
    )

    run = app.lambda_handler(event, lambda_context)

    assert run["data"] == {
        "format": "csv",
        "contentType": "text/csv",
        "tabular": True,
        "files": 1,
        "validationProvided": False,
        "testProvided": False,
        "servingContentTypes": ["text/csv", "application/json"],
    }
    assert run["paths"]["report"] == run["paths"]["evaluation"] + "report/report.html"
    # No champion: no arguments, and no empty list either (SageMaker requires 1-256 items when present).
    assert "ContainerArguments" not in run["jobs"]["evaluate"]["AppSpecification"]
    assert run["names"]["endpoint"] == run["names"]["modelPackageGroup"] == f"{STACK}-iris"
    assert naming.is_valid_sagemaker_name(run["names"]["jobPrefix"] + "-train-abcd")
    process = run["jobs"]["process"]
    assert input_named(process, "data")["S3Uri"] == snapshot_uri(stack, run, "training")
    assert run["source"] == {"bucket": stack.input_bucket, "manifest": event["manifest"], "trigger": "marker"}
    assert process["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]
    arguments = process["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--target-column") + 1] == "label"
    assert arguments[arguments.index("--data-format") + 1] == "csv"
    assert json.loads(arguments[arguments.index("--text-columns") + 1]) == []
    assert (
        run["image"]
        == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    )
    train = run["jobs"]["train"]
    assert json.loads(train["HyperParameters"]["sagemaker_program"]) == "train.py"
    assert json.loads(train["HyperParameters"]["sagemaker_submit_directory"]) == run["code"]["sourceDir"]
    assert [c["ChannelName"] for c in train["InputDataConfig"]] == ["train", "validation", "schema"]
    assert (
        "MaxWaitTimeInSeconds" not in train["StoppingCondition"]
        and train["EnableManagedSpotTraining"] is False
    )
    # The experiment per dataset and the trial per run exist.
    trial = stack.sagemaker.describe_trial(TrialName=run["names"]["trial"])
    assert trial["ExperimentName"] == run["names"]["experiment"]
    [request] = trial_requests
    assert {"Key": "mlops:input-manifest", "Value": event["manifest"]} in request["Tags"]


def test_the_recipe_is_uploaded_by_content_hash_once(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    first = app.lambda_handler(run_input(stack), lambda_context)
    tar_uri = first["code"]["sourceDir"]
    assert tar_uri.startswith(f"s3://{stack.models_bucket}/code/recipe-") and tar_uri.endswith(
        "/sourcedir.tar.gz"
    )
    key = tar_uri.split("/", 3)[3]
    body = stack.s3.get_object(Bucket=stack.models_bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        members = tar.getnames()
    assert "recipe_common.py" in members and all("/" not in m and "__pycache__" not in m for m in members)
    src_prefix = first["code"]["src"].split("/", 3)[3]
    src = stack.s3.list_objects_v2(Bucket=stack.models_bucket, Prefix=src_prefix)["Contents"]
    assert sorted(o["Key"][len(src_prefix) :] for o in src) == sorted(members)

    app.lambda_handler(run_input(stack), lambda_context)
    versions = stack.s3.list_object_versions(Bucket=stack.models_bucket, Prefix=key)["Versions"]
    assert len(versions) == 1, "the second run found the code and uploaded nothing"


def test_pipeline_json_overrides_reach_the_jobs(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    overrides = {
        "target_column": "species",
        "managed_spot": True,
        "max_runtime_seconds": 900,
        "hyperparameters": {"n_estimators": 25, "max_depth": 4},
        "training_instance_type": "ml.c5.xlarge",
    }
    stack.put("training/iris/pipeline.json", json.dumps(overrides))

    run = app.lambda_handler(run_input(stack), lambda_context)

    assert run["configFile"] is True
    arguments = run["jobs"]["process"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--target-column") + 1] == "species"
    train = run["jobs"]["train"]
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 900, "MaxWaitTimeInSeconds": 1800}
    assert train["EnableManagedSpotTraining"] is True
    assert train["CheckpointConfig"]["S3Uri"].startswith(f"s3://{stack.models_bucket}/checkpoints/")
    assert train["HyperParameters"]["n-estimators"] == "25" and train["HyperParameters"]["max-depth"] == "4"
    assert train["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"


def test_an_invalid_pipeline_json_fails_naming_the_field(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    stack.put("training/iris/pipeline.json", json.dumps({"approval_mode": "sometimes"}))
    with pytest.raises(InvalidConfigError, match=r"'approval_mode'.*'sometimes' is not one of auto, manual"):
        app.lambda_handler(run_input(stack), lambda_context)


def test_image_and_text_class_folders_train_with_the_default_recipe(stack, lambda_context):
    for key in ("training/pets/cat/1.jpg", "training/pets/dog/2.png", "training/pets/_READY"):
        stack.put(key, b"\xff\xd8" if "." in key.rsplit("/", 1)[1] else b"")
    for key in ("training/reviews/good/1.txt", "training/reviews/bad/2.txt", "training/reviews/_READY"):
        stack.put(key, "what a lovely film" if key.endswith(".txt") else "")

    pets = app.lambda_handler(run_input(stack, "training/pets/_READY", "marker"), lambda_context)
    reviews = app.lambda_handler(run_input(stack, "training/reviews/_READY", "marker"), lambda_context)

    for run, data_format in ((pets, "image"), (reviews, "text")):
        arguments = run["jobs"]["process"]["AppSpecification"]["ContainerArguments"]
        assert arguments[arguments.index("--data-format") + 1] == data_format
        assert json.loads(run["jobs"]["train"]["HyperParameters"]["sagemaker_program"]) == "train.py"
    assert pets["data"]["servingContentTypes"] == [
        "image/jpeg",
        "image/png",
        "application/x-image",
        "application/json",
    ]
    assert reviews["data"]["servingContentTypes"] == ["text/csv", "application/json"]


def test_recordio_without_a_recipe_is_refused_saying_what_to_add(stack, lambda_context):
    for key in ("training/rec/part-0.rec", "training/rec/part-1.rec", "training/rec/_READY"):
        stack.put(key, b"\x0a\x0b" if key.endswith(".rec") else b"")
    with pytest.raises(RecipeRequiredError) as caught:
        app.lambda_handler(run_input(stack, "training/rec/_READY", "marker"), lambda_context)
    message = str(caught.value)
    assert "recordio data (2 file(s)" in message
    assert (
        "training/rec/pipeline.json" in message
        and '{"recipe": {"image_uri": "<ECR image>", "entry_point": "<script>.py", "content_type": '
        '"application/x-recordio"}}'
        in message
        and "recipes/rec/" in message
    )


def test_the_serving_models_metrics_reach_the_evaluation_job(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    package = register_serving_package(
        stack, f"{STACK}-iris", {"metric:accuracy": "0.93", "metric:f1_macro": "0.9"}
    )

    run = app.lambda_handler(run_input(stack), lambda_context)

    arguments = run["jobs"]["evaluate"]["AppSpecification"]["ContainerArguments"]
    assert json.loads(arguments[arguments.index("--champion-metrics") + 1]) == {
        "accuracy": 0.93,
        "f1_macro": 0.9,
    }
    assert arguments[arguments.index("--champion-package") + 1] == package


def test_a_custom_recipe_runs_its_entry_point_on_its_image(stack, lambda_context):
    for key in ("training/pets/cat/1.jpg", "training/pets/_READY"):
        stack.put(key, b"\xff\xd8" if key.endswith(".jpg") else b"")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pets:1"
    recipe = {"image_uri": image, "entry_point": "pets.py", "content_type": "application/x-image"}
    stack.put("training/pets/pipeline.json", json.dumps({"recipe": recipe}))
    stack.put("recipes/pets/pets.py", "print('train')\n")

    run = app.lambda_handler(run_input(stack, "training/pets/_READY", "marker"), lambda_context)

    assert run["image"] == image and run["data"]["contentType"] == "application/x-image"
    assert json.loads(run["jobs"]["train"]["HyperParameters"]["sagemaker_program"]) == "pets.py"
    process = run["jobs"]["process"]["AppSpecification"]
    assert process["ContainerEntrypoint"][-1].endswith("/pets.py") and process["ContainerArguments"][:2] == [
        "--mode",
        "preprocess",
    ]


def test_a_marker_run_reads_the_folder_and_user_splits(stack, lambda_context):
    for key in ("training/shards/a/1.csv", "training/shards/b/2.csv", "training/shards/_READY"):
        stack.put(key, CSV if key.endswith(".csv") else "")
    stack.put("validation/shards/v.csv", CSV)
    stack.put("test/shards/t.csv", CSV)

    run = app.lambda_handler(run_input(stack, "training/shards/_READY", "marker"), lambda_context)

    process = run["jobs"]["process"]
    assert input_named(process, "data")["S3Uri"] == snapshot_uri(stack, run, "training")
    assert input_named(process, "validation")["S3Uri"] == snapshot_uri(stack, run, "validation")
    copies = stack.s3.list_objects_v2(Bucket=stack.output_bucket, Prefix=f"runs/shards/{run['runId']}/input/")
    assert sorted(o["Key"].split("/input/")[1] for o in copies["Contents"]) == [
        "test/t.csv",
        "training/a/1.csv",
        "training/b/2.csv",
        "validation/v.csv",
    ]
    assert input_named(process, "test")["LocalPath"] == "/opt/ml/processing/input/test"
    assert run["data"]["files"] == 2 and run["data"]["validationProvided"] and run["data"]["testProvided"]


def test_a_marker_without_data_fails_saying_where_it_looked(stack, lambda_context):
    stack.put("training/empty/_READY", "")
    with pytest.raises(
        DatasetNotFoundError, match=r"training/empty/ held no data files when the run started"
    ):
        app.lambda_handler(run_input(stack, "training/empty/_READY", "marker"), lambda_context)


def test_the_input_bucket_is_never_written(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    before = stack.s3.list_object_versions(Bucket=stack.input_bucket)["Versions"]
    app.lambda_handler(run_input(stack), lambda_context)
    assert stack.s3.list_object_versions(Bucket=stack.input_bucket)["Versions"] == before


def register_serving_package(stack: Stack, endpoint: str, properties: dict[str, str]) -> str:
    """A package with recorded metrics, served by the dataset's endpoint (its tag names the package)."""
    stack.sagemaker.create_model_package_group(ModelPackageGroupName=endpoint)
    arn = stack.sagemaker.create_model_package(
        ModelPackageGroupName=endpoint,
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties=properties,
        ModelApprovalStatus="Approved",
    )["ModelPackageArn"]
    serve_package(stack, endpoint, arn)
    return arn


def test_the_run_trains_the_listed_version_whatever_happens_to_the_input_afterwards(stack, lambda_context):
    first = stack.put("training/race/data.csv", "label,a\n1,1\n")
    stack.put("training/race/data.csv.bak", "not,part\n")  # an extended name: its own object, listed as such
    stack.put("training/race2/data.csv", "label,a\n9,9\n")  # a dataset whose name extends this one's
    event = run_input(stack, "training/race/_READY")
    stack.put("training/race/data.csv", "label,a\n2,2\n")  # version 2 lands after the start...
    stack.put("training/race/late.csv", "label,a\n3,3\n")  # ...and a new file

    run = app.lambda_handler(event, lambda_context)

    manifest = json.loads(
        stack.s3.get_object(Bucket=stack.output_bucket, Key=event["manifest"].split("/", 3)[3])["Body"].read()
    )
    [data] = [f for f in manifest["files"] if f["key"] == "training/race/data.csv"]
    assert data["versionId"] == first["VersionId"] and data["etag"] == first["ETag"]
    assert sorted(f["key"] for f in manifest["files"]) == [
        "training/race/data.csv",
        "training/race/data.csv.bak",
    ]
    prefix = snapshot.snapshot_prefix("race", run["runId"], "training")
    copied = stack.s3.get_object(Bucket=stack.output_bucket, Key=f"{prefix}data.csv")["Body"].read()
    assert copied == b"label,a\n1,1\n", "the job's input is version 1"
    keys = [o["Key"] for o in stack.s3.list_objects_v2(Bucket=stack.output_bucket, Prefix=prefix)["Contents"]]
    assert sorted(keys) == [f"{prefix}data.csv", f"{prefix}data.csv.bak"]


def test_a_deleted_object_is_still_read_from_its_listed_version(stack, lambda_context):
    stack.put("training/gone/data.csv", CSV)
    event = run_input(stack, "training/gone/_READY")
    stack.s3.delete_object(Bucket=stack.input_bucket, Key="training/gone/data.csv")  # a delete marker

    run = app.lambda_handler(event, lambda_context)

    prefix = snapshot.snapshot_prefix("gone", run["runId"], "training")
    assert (
        stack.s3.get_object(Bucket=stack.output_bucket, Key=f"{prefix}data.csv")["Body"].read()
        == CSV.encode()
    )


def test_the_listed_pipeline_json_is_used_not_a_later_one(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    stack.put("training/iris/pipeline.json", json.dumps({"target_column": "species"}))
    event = run_input(stack)
    stack.put("training/iris/pipeline.json", json.dumps({"target_column": "later"}))

    run = app.lambda_handler(event, lambda_context)

    assert run["config"]["target_column"] == "species"


def test_a_manifest_of_another_run_is_refused(stack, lambda_context):
    stack.put("training/iris/iris.csv", CSV)
    event = {**run_input(stack), "runId": naming.execution_name("iris", "f" * 64)}
    with pytest.raises(ManifestError, match="belongs to run"):
        app.lambda_handler(event, lambda_context)
