"""The README is the user's reference for parameters and outputs: it must not drift from template.yaml."""

from __future__ import annotations

from tests.unit.template.conftest import ROOT


def test_every_parameter_and_output_is_documented(sam_template):
    readme = (ROOT / "README.md").read_text()
    undocumented = [name for name in sam_template["Parameters"] if f"`{name}`" not in readme]
    assert undocumented == [], f"add these template parameters to README.md: {undocumented}"
    missing_outputs = [name for name in sam_template.get("Outputs", {}) if f"`{name}`" not in readme]
    assert missing_outputs == [], f"add these stack outputs to README.md: {missing_outputs}"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
