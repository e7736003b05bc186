"""Static checks for statemachines/*.asl.json, which cfn-lint cannot see inside (DefinitionUri files).

For each definition: it parses as JSON and as ASL (moto's parser, which the offline mode executes);
every Next/Default/StartAt names a state of its scope; every Task has Retry and Catch; every ${Placeholder}
is defined in the DefinitionSubstitutions of the template's state machine that uses the file, and every
substitution is used.
Run as a script (make lint) or through tests/static/test_validate_asl.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _scopes(states_holder: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield (scope name, its States, its StartAt), descending into Parallel branches and Map processors."""
    yield where, states_holder.get("States", {}), states_holder.get("StartAt", "")
    for name, state in states_holder.get("States", {}).items():
        for i, branch in enumerate(state.get("Branches", [])):
            yield from _scopes(branch, f"{where}/{name}[{i}]")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _scopes(processor, f"{where}/{name}")


def structural_problems(definition: dict[str, Any]) -> list[str]:
    problems = []
    for scope, states, start_at in _scopes(definition, "root"):
        if start_at not in states:
            problems.append(f"{scope}: StartAt '{start_at}' is not a state")
        for name, state in states.items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [choice.get("Next") for choice in state.get("Choices", [])]
            targets += [catcher.get("Next") for catcher in state.get("Catch", [])]
            for target in filter(None, targets):
                if target not in states:
                    problems.append(f"{scope}/{name}: goes to '{target}', which is not a state")
            if state.get("Type") == "Task":
                for field in ("Retry", "Catch"):
                    if not state.get(field):
                        problems.append(f"{scope}/{name}: Task without {field}")
            if state.get("Type") not in {"Choice", "Succeed", "Fail"} and not (
                state.get("Next") or state.get("End")
            ):
                problems.append(f"{scope}/{name}: neither Next nor End")
    return problems


def template_substitutions() -> dict[str, set[str]]:
    """DefinitionUri file -> the DefinitionSubstitutions keys its state machine defines."""
    from samcli.yamlhelper import yaml_parse

    template = yaml_parse((ROOT / "template.yaml").read_text())
    found: dict[str, set[str]] = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            found[str(Path(props["DefinitionUri"]))] = set(props.get("DefinitionSubstitutions", {}))
    return found


def asl_syntax_problem(text: str) -> str | None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    dummy = PLACEHOLDER.sub(lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m.group(1)}", text)
    try:
        AmazonStateLanguageParser.parse(dummy)
    except Exception as error:
        return f"not valid ASL: {error}"
    return None


def check_file(path: Path, substitutions: dict[str, set[str]]) -> list[str]:
    relative = str(path.relative_to(ROOT))
    text = path.read_text()
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as error:
        return [f"{relative}: not JSON: {error}"]
    problems = [f"{relative}: {p}" for p in structural_problems(definition)]
    if relative not in substitutions:
        problems.append(f"{relative}: no AWS::Serverless::StateMachine in template.yaml uses this file")
    else:
        used = set(PLACEHOLDER.findall(text))
        defined = substitutions[relative]
        problems += [
            f"{relative}: ${{{name}}} is not in DefinitionSubstitutions" for name in sorted(used - defined)
        ]
        problems += [f"{relative}: substitution {name} is never used" for name in sorted(defined - used)]
    syntax = asl_syntax_problem(text)
    if syntax:
        problems.append(f"{relative}: {syntax}")
    return problems


def main() -> int:
    files = sorted((ROOT / "statemachines").glob("*.asl.json"))
    substitutions = template_substitutions()
    problems = [p for f in files for p in check_file(f, substitutions)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"ASL: {len(files)} definition(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
