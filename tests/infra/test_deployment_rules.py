"""Deployment rules Azure enforces beyond the Bicep types (tests/infra/deployment_rules.py).

Each rule holds for the templates in infra/, and refuses the template it was
written for as it was before issue 13 (tests/infra/fixtures/before-issue-13/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.bicep_model import MODULES, all_resources, resources, resources_from_text
from tests.infra.deployment_rules import (
    FLEX_REFUSED_APP_SETTINGS,
    FLEX_REFUSED_SITE_PROPERTIES,
    action_matches,
    flex_problems,
    flex_sites,
    role_problems,
)

BEFORE = Path(__file__).resolve().parent / "fixtures" / "before-issue-13"


# ------------------------------------------------------------------ Flex Consumption


def test_the_function_app_is_a_flex_consumption_site() -> None:
    """The rule applies to our site at all (else it would pass vacuously)."""
    sites = flex_sites(all_resources())
    assert [(s.file.name, s.symbol) for s in sites] == [("functionapp.bicep", "site")]


def test_the_flex_site_sets_nothing_flex_consumption_refuses() -> None:
    assert flex_problems(all_resources()) == []


def test_ftps_state_on_a_flex_site_is_refused() -> None:
    """The function app module before issue 13 set siteConfig.ftpsState (ARM error 51021)."""
    problems = flex_problems(list(resources(BEFORE / "functionapp.bicep").values()))
    assert problems == [
        "functionapp.bicep:site properties.siteConfig.ftpsState: FTPS not supported; "
        "ARM error 51021 (Azure/azure-cli#31414)"
    ]


def test_ftp_stays_off_through_the_publishing_policy() -> None:
    """What ftpsState did on other plans: the ftp publishing credentials policy is off."""
    [policy] = [
        r
        for r in resources(MODULES / "functionapp.bicep").values()
        if r.type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies" and r.body["name"] == "ftp"
    ]
    assert policy.properties == {"allow": False}
    assert policy.condition is None


FLEX_SITE = """
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan'
  location: 'x'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app'
  location: 'x'
  properties: {
    serverFarmId: plan.id
    %(site)s
  }
}
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: { %(settings)s }
}
resource web 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'web'
  properties: { %(web)s }
}
"""


def _flex(site: str = "", settings: str = "", web: str = "") -> list[str]:
    text = FLEX_SITE % {"site": site, "settings": settings, "web": web}
    return flex_problems(list(resources_from_text(text).values()))


def test_refused_site_properties_anywhere_on_the_site() -> None:
    assert _flex() == []
    assert _flex(site="siteConfig: { alwaysOn: true, linuxFxVersion: 'Python|3.11' }") == [
        "fixture.bicep:site properties.siteConfig.alwaysOn: not valid",
        "fixture.bicep:site properties.siteConfig.linuxFxVersion: replaced by functionAppConfig.runtime",
    ]
    assert _flex(site="vnetRouteAllEnabled: true") == [
        "fixture.bicep:site properties.vnetRouteAllEnabled: not used for networking"
    ]
    assert _flex(web="Use32BitWorkerProcess: false") == [
        "fixture.bicep:web properties.Use32BitWorkerProcess: 32-bit not supported; "
        "ARM error 51021 (Azure/azure-cli#31414)"
    ]


def test_refused_app_settings_in_either_place() -> None:
    assert _flex(settings="FUNCTIONS_WORKER_RUNTIME: 'python', OTHER: 'x'") == [
        "fixture.bicep:settings appsettings FUNCTIONS_WORKER_RUNTIME: "
        "replaced by functionAppConfig.runtime.name"
    ]
    pairs = "siteConfig: { appSettings: [ { name: 'website_run_from_package', value: '1' } ] }"
    assert _flex(site=pairs) == [
        "fixture.bicep:site siteConfig.appSettings website_run_from_package: not used for deployments"
    ]


def test_sites_on_other_plans_are_not_held_to_it() -> None:
    text = (FLEX_SITE % {"site": "siteConfig: { alwaysOn: true }", "settings": "", "web": ""}).replace(
        "sku: { tier: 'FlexConsumption', name: 'FC1' }", "sku: { tier: 'PremiumV3', name: 'P1v3' }"
    )
    assert flex_problems(list(resources_from_text(text).values())) == []


@pytest.mark.parametrize(
    "name",
    [
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED",
    ],
)
def test_the_settings_issue_13_names_are_refused(name: str) -> None:
    assert name in FLEX_REFUSED_APP_SETTINGS


@pytest.mark.parametrize(
    "name",
    [
        "ftpsState",
        "linuxFxVersion",
        "alwaysOn",
        "use32BitWorkerProcess",
        "javaVersion",
        "netFrameworkVersion",
    ],
)
def test_the_site_properties_issue_13_names_are_refused(name: str) -> None:
    assert name in FLEX_REFUSED_SITE_PROPERTIES


# ------------------------------------------------------------------ wildcard role actions


def test_role_actions_match_as_azure_rbac_matches_them() -> None:
    assert action_matches("*/delete", "Microsoft.Authorization/locks/delete")
    assert action_matches("*/delete", "Microsoft.Authorization/locks/Delete")
    assert action_matches(
        "Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete"
    )
    assert action_matches("*", "Microsoft.Authorization/elevateAccess/Action")
    assert not action_matches("*/delete", "Microsoft.Authorization/locks/write")
    assert not action_matches("Microsoft.Web/*/delete", "Microsoft.Authorization/locks/delete")


def test_the_cleanup_role_withholds_authorization_operations() -> None:
    assert role_problems(all_resources()) == []


def test_a_wildcard_delete_without_the_exclusions_is_refused() -> None:
    """The cleanup role before issue 13: '*/delete' and no notActions."""
    problems = role_problems(list(resources(BEFORE / "cleanup-role.bicep").values()))
    assert "Microsoft.Authorization/locks/delete" in "\n".join(problems)
    assert "Microsoft.Authorization/roleAssignments/delete" in "\n".join(problems)
    assert "Microsoft.Authorization/policyAssignments/delete" in "\n".join(problems)
    assert all("'*/delete' grants Microsoft.Authorization/" in p for p in problems)


ROLE = """
targetScope = 'subscription'
param extra array = %(extra)s
var not = %(not_actions)s
resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid('r')
  properties: {
    roleName: 'r'
    type: 'CustomRole'
    permissions: [
      {
        actions: union([ 'Microsoft.Resources/subscriptions/resourceGroups/read' ], extra)
        notActions: %(not_ref)s
      }
    ]
    assignableScopes: [ subscription().id ]
  }
}
"""


def _role(
    tmp_path: Path, extra: str, not_actions: str = "[]", not_ref: str = "not", name: str = "role.bicep"
) -> list[str]:
    """The rule follows variables and parameter defaults, so the fixture is a file
    (one per template: bicep_model caches what it parsed by path)."""
    path = tmp_path / name
    path.write_text(ROLE % {"extra": extra, "not_actions": not_actions, "not_ref": not_ref})
    return role_problems(list(resources(path).values()))


def test_wildcards_that_reach_writes_and_elevation_need_those_exclusions(tmp_path: Path) -> None:
    problems = _role(tmp_path, "[ '*' ]", "[ 'Microsoft.Authorization/*/Delete' ]")
    assert any("Microsoft.Authorization/roleAssignments/write" in p for p in problems)
    assert any("Microsoft.Authorization/elevateAccess/Action" in p for p in problems)
    assert not any("/delete" in p for p in problems)
    full = (
        "[ 'Microsoft.Authorization/*/Delete', 'Microsoft.Authorization/*/Write', "
        "'Microsoft.Authorization/elevateAccess/Action' ]"
    )
    assert _role(tmp_path, "[ '*' ]", full, name="full.bicep") == []


def test_exclusions_need_only_cover_what_the_wildcards_reach(tmp_path: Path) -> None:
    assert _role(tmp_path, "[ '*/write' ]", "[ 'Microsoft.Authorization/*/Write' ]") == []


def test_narrow_actions_need_no_exclusions(tmp_path: Path) -> None:
    assert _role(tmp_path, "[ 'Microsoft.Web/*/delete', 'Microsoft.Storage/storageAccounts/delete' ]") == []


def test_the_exclusions_cannot_come_from_a_parameter(tmp_path: Path) -> None:
    problems = _role(tmp_path, "[ '*/delete' ]", not_ref="extra")
    assert problems == ["role.bicep:role permissions[0].notActions: must be a fixed list, not a parameter"]
