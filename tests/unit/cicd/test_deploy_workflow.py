"""The CI/CD workflow runs only what this repository defines, as docs/cicd.md and the bootstrap expect."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
MAKEFILE = ROOT / "Makefile"
# What aws-actions/configure-aws-credentials puts in the job's environment.
SET_BY_CREDENTIALS_ACTION = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE.read_text(), flags=re.MULTILINE))


def recipe(target: str) -> str:
    """The recipe lines of one make target (tab-indented lines after `target:`)."""
    match = re.search(rf"^{target}:.*\n((?:\t.*\n|\\\n)*)", MAKEFILE.read_text(), flags=re.MULTILINE)
    assert match, f"no target {target} in the Makefile"
    return match.group(1)


def commands(run: str) -> list[list[str]]:
    """The simple commands of a `run:` script (lines, and, or, pipes and `;` split them)."""
    found = []
    for line in run.splitlines():
        for part in re.split(r"&&|\|\||[;|]", line):
            words = shlex.split(part, comments=True)
            if words:
                found.append(words)
    return found


def run_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    return [
        (job_id, job, words)
        for job_id, job in workflow["jobs"].items()
        for step in job["steps"]
        if "run" in step
        for words in commands(step["run"])
    ]


def test_every_command_the_workflow_runs_is_a_make_target(workflow: dict[str, Any]) -> None:
    targets = make_targets()
    steps = run_steps(workflow)
    assert steps
    for job_id, _job, words in steps:
        assert words[0] == "make", (
            f"{job_id}: `{shlex.join(words)}` is not a make target; add one to the Makefile"
        )
        goals = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        assert goals, f"{job_id}: `{shlex.join(words)}` names no target"
        assert set(goals) <= targets, f"{job_id}: {set(goals) - targets} not in the Makefile"


def test_every_variable_a_make_target_reads_is_set_by_the_job(workflow: dict[str, Any]) -> None:
    for job_id, job, words in run_steps(workflow):
        for goal in (w for w in words[1:] if "=" not in w):
            read = set(re.findall(r"\$\$\{?([A-Z][A-Z0-9_]*)", recipe(goal)))
            given = set(job.get("env", {})) | {w.split("=", 1)[0] for w in words[1:] if "=" in w}
            missing = read - given - SET_BY_CREDENTIALS_ACTION
            assert not missing, f"{job_id}: make {goal} reads {sorted(missing)}, which the job does not set"


def test_the_makefile_checks_that_deploy_settings_are_given() -> None:
    for name in ("STACK", "ARTIFACTS_BUCKET"):
        assert f'test -n "$${name}"' in recipe("deploy"), name
    assert 'test -n "$$STACK"' in recipe("smoke")


def test_actions_are_pinned_to_a_commit(workflow: dict[str, Any]) -> None:
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
    assert [u for u in uses if not PINNED.match(u)] == []
    text = WORKFLOW.read_text()
    # Each pin says which release it is, so an update is a reviewable diff.
    assert all(re.search(rf"{re.escape(u)} # v\d+\.\d+\.\d+", text) for u in uses)


def test_permissions_are_minimal(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {}
    for job_id, job in workflow["jobs"].items():
        allowed = {"contents": "read", "id-token": "write"} if "environment" in job else {"contents": "read"}
        assert job["permissions"] == allowed, job_id
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, job_id


def test_pull_requests_test_and_main_deploys_staging_then_prod(workflow: dict[str, Any]) -> None:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    triggers = workflow[True]
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert "if" not in jobs["test"]
    assert [w for _, _, w in run_steps({"jobs": {"test": jobs["test"]}})] == [["make", "test"]]
    main_only = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    staging, prod = jobs["deploy-staging"], jobs["deploy-prod"]
    assert (staging["needs"], staging["environment"], staging["if"]) == ("test", "staging", main_only)
    assert (prod["needs"], prod["environment"], prod["if"]) == ("deploy-staging", "prod", main_only)
    for job in (staging, prod):
        runs = [w for _, _, w in run_steps({"jobs": {"j": job}})]
        # deploy, then the post-deploy check; prod runs only after staging's check passed (needs).
        assert runs[-2:] == [["make", "deploy"], ["make", "smoke"]]
        assert job["concurrency"]["cancel-in-progress"] is False


def test_the_workflow_uses_the_runtime_of_the_functions(workflow: dict[str, Any]) -> None:
    template = (ROOT / "template.yaml").read_text()
    runtime = re.search(r"Runtime: python(3\.\d+)", template)
    assert runtime
    versions = {
        step["with"]["python-version"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/setup-python@")
    }
    assert versions == {runtime.group(1)}
