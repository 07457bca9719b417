"""azure.yaml and infra/main.parameters.json agree with the templates."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.infra.bicep_model import INFRA, MAIN, REPO_ROOT, SUBSCRIPTION, outputs, parameters

# Values azd itself puts in every hook's environment, besides main.bicep's outputs.
AZD_BUILT_INS = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_PRINCIPAL_ID"}


def azure_yaml() -> dict[str, Any]:
    config = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text())
    assert isinstance(config, dict)
    return config


def main_parameters() -> dict[str, Any]:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert isinstance(given, dict)
    return given


def test_azd_deploys_the_function_app() -> None:
    config = azure_yaml()
    assert config["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert config.get("infra", {}).get("provider", "bicep") == "bicep"
    assert config.get("infra", {}).get("path", "infra") == "infra"


def test_postdeploy_hook_creates_the_event_subscription() -> None:
    hooks = azure_yaml()["hooks"]["postdeploy"]
    assert set(hooks) == {"posix", "windows"}
    env_var = {
        "posix": r"\$\{?([A-Z_][A-Z0-9_]*)",  # $VAR or ${VAR}
        "windows": r"\$env:([A-Z_][A-Z0-9_]*)",  # $env:VAR
    }
    for os_name, shell in hooks.items():
        assert shell["continueOnError"] is False
        script = shell["run"]
        assert "az deployment group create" in script
        assert "--template-file infra/subscription.bicep" in script
        assert (REPO_ROOT / "infra/subscription.bicep").is_file()

        # Every template parameter it passes exists, and every required one is passed.
        passed = set(re.findall(r"(\w+)=\"?\$", script))
        declared = parameters(SUBSCRIPTION)
        assert passed <= set(declared), passed - set(declared)
        required = {name for name, p in declared.items() if p["default"] is None}
        assert required <= passed, required - passed

        # Every variable it reads is an output of main.bicep or one azd always sets.
        used = set(re.findall(env_var[os_name], script))
        assert used
        unknown = used - set(outputs(MAIN)) - AZD_BUILT_INS
        assert not unknown, f"hook reads {unknown}, which azd does not set"


def test_posix_hook_is_valid_sh() -> None:
    import subprocess

    script = azure_yaml()["hooks"]["postdeploy"]["posix"]["run"]
    result = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


def test_parameters_file_matches_main() -> None:
    declared = parameters(MAIN)
    given = main_parameters()
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(given), required - set(given)
    assert given["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert given["location"]["value"] == "${AZURE_LOCATION}"
    assert given["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_parameter_defaults_match_the_template() -> None:
    """An azd `${VAR=default}` must not silently change a template default."""
    declared = parameters(MAIN)
    for name, entry in main_parameters().items():
        match = re.fullmatch(r"\$\{([A-Z0-9_]+)(?:=(.*))?\}", str(entry["value"]))
        assert match, f"{name}: {entry['value']}"
        default = match.group(2)
        if default is None:
            continue
        template_default = declared[name]["default"]
        if isinstance(template_default, bool):
            template_default = "true" if template_default else "false"
        assert default == str(template_default), (
            f"{name}: parameters file {default!r}, template {template_default!r}"
        )
