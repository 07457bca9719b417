"""Every resource body in infra/ against the Bicep types of its type and api-version.

tests/infra/bicep_types.py is the check; tests/infra/bicep_types/ the extract of
Azure/bicep-types-az it reads. The fixtures under tests/infra/fixtures/before-issue-13/
are templates as they were before issue 13, kept to show that the check refuses them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.bicep_model import Resource, all_resources, resources, resources_from_text
from tests.infra.bicep_types import (
    TYPES_DIR,
    check_all,
    check_resource,
    extract_file_name,
    find_resource_type,
    type_files,
)
from tests.infra.extract_bicep_types import FIXTURE_TYPES, used_types

BEFORE = Path(__file__).resolve().parent / "fixtures" / "before-issue-13"


def _label(resource: Resource) -> str:
    return f"{resource.file.name}:{resource.symbol}"


@pytest.mark.parametrize("resource", all_resources(), ids=_label)
def test_resource_matches_the_bicep_types_of_its_api_version(resource: Resource) -> None:
    assert check_resource(resource) == []


def test_every_template_resource_was_checked() -> None:
    """No resource escapes the check for want of types."""
    for resource in all_resources():
        assert find_resource_type(resource.type, resource.api_version), _label(resource)


# ------------------------------------------------------------------ the regressions


def test_anonymous_pull_on_registries_2023_07_01_is_refused() -> None:
    """The registry module before issue 13: a property its api-version does not have."""
    [registry] = resources(BEFORE / "registry.bicep").values()
    assert registry.api_version == "2023-07-01"
    problems = check_resource(registry)
    assert len(problems) == 1
    assert problems[0].startswith("properties.anonymousPullEnabled: no such property")


def test_the_registry_now_uses_an_api_version_with_what_it_sets() -> None:
    registry = resources(Path(__file__).resolve().parents[2] / "infra/modules/registry.bicep")["registry"]
    assert {"anonymousPullEnabled", "roleAssignmentMode"} <= set(registry.properties)
    assert not registry.api_version.endswith("-preview")
    assert check_resource(registry) == []


def test_abac_mode_cannot_be_asked_of_registries_2023_07_01() -> None:
    [registry] = resources_from_text(
        """
        resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
          name: 'crdockmaster'
          location: 'westeurope'
          sku: { name: 'Basic' }
          properties: { roleAssignmentMode: 'AbacRepositoryPermissions' }
        }
        """
    ).values()
    [problem] = check_resource(registry)
    assert problem.startswith("properties.roleAssignmentMode: no such property")


# ------------------------------------------------------------------ what the check decides


def _problems(body: str, type_: str = "Microsoft.ContainerRegistry/registries@2025-11-01") -> list[str]:
    text = f"param p string\nresource r '{type_}' = {{\n{body}\n}}\n"
    [resource] = resources_from_text(text).values()
    return check_resource(resource)


REGISTRY = "name: 'crdockmaster'\nlocation: 'westeurope'\nsku: { name: 'Basic' }\n"


def test_a_valid_body_passes() -> None:
    assert _problems(REGISTRY + "properties: { adminUserEnabled: false }") == []


def test_unknown_and_mis_cased_properties() -> None:
    problems = _problems(REGISTRY + "properties: { adminuserEnabled: false, quarantine: true }")
    assert problems[0] == "properties.adminuserEnabled: mis-cased; the type says 'adminUserEnabled'"
    assert problems[1].startswith("properties.quarantine: no such property")
    assert len(problems) == 2


def test_enum_values_closed_and_extensible() -> None:
    # sku.name is a closed enum; publicNetworkAccess an extensible one (a union with
    # string), held to its listed values all the same (see bicep_types' doc).
    assert _problems(
        "name: 'crdockmaster'\nlocation: 'x'\nsku: { name: 'Free' }\n"
        "properties: { publicNetworkAccess: 'On' }"
    ) == [
        "sku.name: 'Free' is not one of 'Classic', 'Basic', 'Standard', 'Premium'",
        "properties.publicNetworkAccess: 'On' is not one of 'Enabled', 'Disabled'",
    ]
    assert _problems(REGISTRY + "properties: { publicNetworkAccess: 'enabled' }") == [
        "properties.publicNetworkAccess: 'enabled' is mis-cased; the type says 'Enabled'"
    ]


def test_both_branches_of_a_conditional_are_checked() -> None:
    body = REGISTRY + "properties: { roleAssignmentMode: empty(p) ? 'AbacRepositoryPermissions' : 'Legacy' }"
    assert _problems(body) == [
        "properties.roleAssignmentMode: 'Legacy' is not one of "
        "'AbacRepositoryPermissions', 'LegacyRegistryPermissions'"
    ]


def test_read_only_properties_cannot_be_set() -> None:
    assert _problems(REGISTRY + "properties: { loginServer: 'x.azurecr.io' }") == [
        "properties.loginServer: read-only, cannot be set"
    ]
    assert _problems(REGISTRY + "id: 'x'") == ["id: read-only, cannot be set"]


def test_required_properties_must_be_set() -> None:
    assert _problems("name: 'crdockmaster'\nlocation: 'x'") == ["sku: required, not set"]
    assert _problems("name: 'crdockmaster'\nlocation: 'x'\nsku: {}") == ["sku.name: required, not set"]


def test_literal_kinds_lengths_and_patterns() -> None:
    assert _problems(REGISTRY + "properties: { adminUserEnabled: 'false' }") == [
        "properties.adminUserEnabled: expected bool, got string"
    ]
    assert _problems("name: 'cr'\nlocation: 'x'\nsku: { name: 'Basic' }") == [
        "name: 'cr' is shorter than 5 characters"
    ]
    assert _problems("name: 'cr-dockmaster'\nlocation: 'x'\nsku: { name: 'Basic' }") == [
        "name: 'cr-dockmaster' does not match the pattern ^[a-zA-Z0-9]*$"
    ]


def test_nested_objects_and_arrays_are_checked() -> None:
    body = REGISTRY + (
        "properties: { networkRuleSet: { defaultAction: 'Deny', ipRules: [\n"
        "  { value: '10.0.0.0/8', action: 'Allow' }\n"
        "  { value: '10.0.0.0/8', action: 'Deny', extra: 1 }\n"
        "] } }"
    )
    problems = _problems(body)
    assert problems[0] == "properties.networkRuleSet.ipRules[1].action: 'Deny' is not one of 'Allow'"
    assert problems[1].startswith("properties.networkRuleSet.ipRules[1].extra: no such property")
    assert len(problems) == 2
    assert _problems(REGISTRY + "properties: { networkRuleSet: { ipRules: [] } }") == [
        "properties.networkRuleSet.defaultAction: required, not set"
    ]


def test_maps_check_their_values_and_accept_any_key() -> None:
    assert _problems(REGISTRY + "tags: { 'azd-env-name': 'dev', '${p}': 'x', n: 1 }") == [
        "tags.n: expected string, got int"
    ]


def test_expressions_are_not_evaluated() -> None:
    body = (
        "name: p\nlocation: resourceGroup().location\nsku: { name: p }\n"
        "properties: { adminUserEnabled: !empty(p) }"
    )
    assert _problems(body) == []


def test_discriminated_objects_use_the_chosen_variant() -> None:
    subscription = "Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15"
    function = (
        "name: 'images'\nproperties: { destination: { endpointType: 'AzureFunction', properties: %s } }"
    )
    ok = function % "{ maxEventsPerBatch: 1 }"
    assert _problems(ok, subscription) == []
    wrong = function % "{ endpointUrl: 'x' }"
    [problem] = _problems(wrong, subscription)
    assert problem.startswith("properties.destination.properties.endpointUrl: no such property")
    unknown = "name: 'images'\nproperties: { destination: { endpointType: 'Ftp' } }"
    [problem] = _problems(unknown, subscription)
    assert problem.startswith("properties.destination.endpointType: 'Ftp' is not one of ")


def test_config_resources_are_told_apart_by_name() -> None:
    config = "Microsoft.Web/sites/config@2024-04-01"
    assert _problems("name: 'web'\nproperties: { ftpsState: 'Disabled' }", config) == []
    [problem] = _problems("name: 'web'\nproperties: { ftpState: 'Disabled' }", config)
    assert problem.startswith("properties.ftpState: no such property")
    [problem] = _problems("name: 'websettings'", config)
    assert problem.startswith("name: 'websettings' is not one of 'appsettings'")


def test_unknown_api_versions_are_reported() -> None:
    [problem] = _problems(REGISTRY, "Microsoft.ContainerRegistry/registries@2099-01-01")
    assert problem.startswith("no Bicep types for Microsoft.ContainerRegistry/registries@2099-01-01")


def test_the_deployment_scope_must_be_one_the_type_allows() -> None:
    [group] = resources_from_text(
        "resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {\n  name: 'rg'\n  location: 'x'\n}\n"
    ).values()
    assert group.target_scope == "resourceGroup"
    assert check_resource(group) == ["cannot be deployed at this scope (scope flags 4, here 8)"]


def test_existing_resources_take_a_name_only() -> None:
    [registry] = resources_from_text(
        "resource r 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {\n"
        "  name: 'crdockmaster'\n  properties: { adminUserEnabled: false }\n}\n"
    ).values()
    assert check_resource(registry) == [
        "an existing resource takes only name, parent and scope, not ['properties']"
    ]


# ------------------------------------------------------------------ the extract


def test_the_extract_holds_exactly_the_types_in_use() -> None:
    """Refresh with tests/infra/extract_bicep_types.py when this fails."""
    held = {name.lower() for file in type_files() for name in file.resources}
    assert held == {name.lower() for name in used_types()}
    assert set(FIXTURE_TYPES) <= {
        f"{r.type}@{r.api_version}" for r in resources(BEFORE / "registry.bicep").values()
    }


def test_the_extract_says_where_it_comes_from() -> None:
    for file in type_files():
        source = file.source
        assert source["repository"] == "Azure/bicep-types-az"
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), file.path.name
        assert re.fullmatch(r"[0-9a-f]{40}", source["blob"]), file.path.name
        assert re.fullmatch(r"generated/[^/]+/[^/]+/[^/]+/types\.json", source["path"]), file.path.name
        assert file.path.name == extract_file_name(source["path"])
        version = source["path"].split("/")[3]
        assert all(name.endswith("@" + version) for name in file.resources), file.path.name


def test_the_extract_is_self_contained() -> None:
    """Every reference resolves inside its file, and nothing unreachable is kept."""
    for path in sorted(TYPES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        refs = {int(r) for r in re.findall(r'"\$ref": ?"#/(\d+)"', json.dumps(data["types"]))}
        roots = set(data["resources"].values())
        assert refs | roots == set(range(len(data["types"]))), path.name


def test_the_report_names_file_symbol_and_type() -> None:
    report = check_all(resources(BEFORE / "registry.bicep").values())
    assert list(report) == ["registry.bicep:registry (Microsoft.ContainerRegistry/registries@2023-07-01)"]
