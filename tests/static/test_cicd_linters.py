"""The CI/CD files pass the linters `make lint` runs on them, and those linters catch what they are there for.

Each linter runs once on the real file and a copy with a known defect, so a linter that silently checks
nothing (wrong flag, wrong schema, file skipped) fails here. `make lint` installs the tools in their own
virtualenvs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
BOOTSTRAP = ROOT / "cicd" / "bootstrap.yaml"
WORKFLOW_LINT = ROOT / ".venv-workflow-lint" / "bin"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"


def tool(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: `make lint` installs it")
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


def with_defect(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"the defect's anchor {old!r} is gone from {source.name}: update this test"
    broken = tmp_path / f"broken-{source.name}"
    broken.write_text(text.replace(old, new, 1))
    return broken


def test_zizmor_passes_the_workflow_and_flags_an_injection(tmp_path: Path) -> None:
    good = tmp_path / "deploy.yml"
    shutil.copy(WORKFLOW, good)
    bad = with_defect(
        tmp_path,
        WORKFLOW,
        "      - run: make test",
        '      - run: echo "${{ github.event.pull_request.title }}"',
    )
    result = run(
        tool(WORKFLOW_LINT / "zizmor"),
        "--offline",
        "--persona",
        "pedantic",
        "--no-progress",
        "--format",
        "json",
        str(good),
        str(bad),
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    flagged = {
        (location["symbolic"]["key"]["Local"]["verbatim_path"], finding["ident"])
        for finding in findings
        for location in finding["locations"]
    }
    assert flagged == {(str(bad), "template-injection")}, findings


def test_the_github_workflow_schema_passes_the_workflow_and_rejects_a_misspelt_key(tmp_path: Path) -> None:
    schema = (tool(WORKFLOW_LINT / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows")
    passed = run(*schema, str(WORKFLOW))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    bad = with_defect(tmp_path, WORKFLOW, "    runs-on: ubuntu-24.04", "    runs_on: ubuntu-24.04")
    failed = run(*schema, str(bad))
    assert failed.returncode == 1
    assert "runs_on" in failed.stdout


def test_cfn_lint_passes_the_bootstrap_template_and_flags_a_wrong_attribute(tmp_path: Path) -> None:
    bad = with_defect(
        tmp_path,
        BOOTSTRAP,
        "!GetAtt CloudFormationExecutionRole.Arn",
        "!GetAtt CloudFormationExecutionRole.Arnn",
    )
    result = run(tool(CFN_LINT), "--format", "json", str(BOOTSTRAP), str(bad))
    problems = json.loads(result.stdout)
    assert {p["Filename"] for p in problems} == {str(bad)}, problems
    assert any(p["Rule"]["Id"] == "E1010" for p in problems)


def test_checkov_passes_the_bootstrap_template_and_flags_a_public_bucket(tmp_path: Path) -> None:
    bad = with_defect(
        tmp_path, BOOTSTRAP, "        BlockPublicPolicy: true", "        BlockPublicPolicy: false"
    )
    result = run(
        tool(CHECKOV),
        "--quiet",
        "--compact",
        "--skip-download",
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "-f",
        str(BOOTSTRAP),
        "-f",
        str(bad),
    )
    reports = json.loads(result.stdout)
    failed = {
        (Path(check["file_abs_path"]).name, check["check_id"])
        for report in (reports if isinstance(reports, list) else [reports])
        for check in report["results"]["failed_checks"]
    }
    assert failed == {(bad.name, "CKV_AWS_54")}, failed
