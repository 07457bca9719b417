"""Rules Azure enforces on a deployment beyond the Bicep types, checked offline.

A body can match its resource type and still be refused, or quietly do harm, once
deployed. Each rule here says where Azure states it:

Flex Consumption sites. Microsoft.Web/sites carries the properties of every App
Service plan, but a site on a Flex Consumption plan refuses many of them. ARM
answers a PUT that sets them with 400 BadRequest, code 51021: "The following list
of 5 site configuration properties (Site.SiteConfig.FtpsState,
Site.SiteConfig.Use32BitWorkerProcess, Site.SiteConfig.PreWarmedInstanceCount,
Site.SiteConfig.NetFrameworkVersion, Site.SiteConfig.FunctionsRuntimeScaleMonitoringEnabled)
for Flex Consumption sites is invalid. Please remove or rename them before
retrying." (quoted in Azure/azure-cli#31414). The full list of site properties and
app settings a Flex Consumption app must not set is the table "Flex Consumption
plan deprecations" of the Functions app settings reference
(learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations;
MicrosoftDocs/azure-docs, articles/azure-functions/functions-app-settings.md).
The table writes the site properties as `properties.<name>`; some live on the site
and some in siteConfig, so a name is refused in both places. Azure's official
Flex samples (Azure-Samples/azure-functions-flex-consumption-samples,
IaC/bicep/core/host/function.bicep) set no siteConfig property but appSettings.

Wildcard role actions. In a role definition, `*` in an action matches any
characters (Azure RBAC, "Understand Azure role definitions": Actions, wildcards),
so an action such as `*/delete` granted at subscription scope also grants
Microsoft.Authorization/locks/delete, roleAssignments/delete and
policyAssignments/delete, and `*` or `*/write` the writes that hand out access.
The built-in Contributor role holds `*` and withholds exactly those through its
notActions (role b24988ac-6180-42a0-ab88-20f7382dd24c; MicrosoftDocs/azure-docs,
articles/role-based-access-control/built-in-roles/privileged.md). The rule: any
operation of that kind a wildcard action matches must be matched by a notAction
too, and the notActions must be a fixed list (a parameter could empty it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.bicep_model import (
    MAIN,
    Resource,
    all_resources,
    is_literal,
    key_text,
    modules,
    parameters,
    variables,
)

# ------------------------------------------------------------------ Flex Consumption

DOCS_FLEX = "functions-app-settings#flex-consumption-plan-deprecations"
ARM_51021 = "ARM error 51021 (Azure/azure-cli#31414)"

# App settings, with the reason the docs give.
FLEX_REFUSED_APP_SETTINGS = {
    "ENABLE_ORYX_BUILD": "replaced by remoteBuild when deploying",
    "FUNCTIONS_EXTENSION_VERSION": "set by the backend",
    "FUNCTIONS_WORKER_RUNTIME": "replaced by functionAppConfig.runtime.name",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "replaced by functionAppConfig.runtime.version",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "replaced by scaleAndConcurrency's trigger section",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "not valid",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": "replaced by remoteBuild when deploying",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "replaced by functionAppConfig.deployment",
    "WEBSITE_CONTENTOVERVNET": "not used for networking",
    "WEBSITE_CONTENTSHARE": "replaced by functionAppConfig.deployment",
    "WEBSITE_DNS_SERVER": "DNS comes from the integrated virtual network",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "replaced by scaleAndConcurrency.maximumInstanceCount",
    "WEBSITE_NODE_DEFAULT_VERSION": "replaced by functionAppConfig.runtime.version",
    "WEBSITE_RUN_FROM_PACKAGE": "not used for deployments",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "no content share",
    "WEBSITE_VNET_ROUTE_ALL": "not used for networking",
    # Not in the table: stricter. The reference documents it as a cold-start
    # optimisation of the Consumption plan for .NET isolated, which Flex replaces.
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED": "a Consumption plan setting (stricter than the table)",
}

# Site properties (the table's `properties.<name>`), in ARM's JSON spelling, with
# the reason; refused on the site's properties and in siteConfig alike.
FLEX_REFUSED_SITE_PROPERTIES = {
    "alwaysOn": "not valid",
    "containerSize": "renamed instanceMemoryMB",
    "dnsConfiguration": "the virtual network's DNS servers are used",
    "ftpsState": f"FTPS not supported; {ARM_51021}",
    "reserved": "not valid (the table's isReserved)",
    "isXenon": "not valid",
    "javaVersion": "replaced by functionAppConfig.runtime.version",
    "linuxFxVersion": "replaced by functionAppConfig.runtime",
    "netFrameworkVersion": f"replaced by functionAppConfig.runtime.version; {ARM_51021}",
    "powerShellVersion": "replaced by functionAppConfig.runtime.version",
    "functionAppScaleLimit": "renamed maximumInstanceCount",
    "preWarmedInstanceCount": f"renamed alwaysReadyInstances; {ARM_51021}",
    "use32BitWorkerProcess": f"32-bit not supported; {ARM_51021}",
    "vnetBackupRestoreEnabled": "not used for networking",
    "vnetContentShareEnabled": "not used for networking",
    "vnetImagePullEnabled": "not used for networking",
    "vnetRouteAllEnabled": "not used for networking",
    "windowsFxVersion": "not valid",
    # In ARM's error, not in the table.
    "functionsRuntimeScaleMonitoringEnabled": ARM_51021,
}

WEB_SITES = "Microsoft.Web/sites"
WEB_PLANS = "Microsoft.Web/serverfarms"
WEB_CONFIG = "Microsoft.Web/sites/config"


def _is_type(resource: Resource, type_: str) -> bool:
    return resource.type.lower() == type_.lower()


def _is_flex_plan(plan: Resource) -> bool:
    sku = plan.body.get("sku") or {}
    values = {sku.get("tier"), sku.get("name")}
    return any(isinstance(v, str) and is_literal(v) and v in ("FlexConsumption", "FC1") for v in values)


def flex_sites(resources: Iterable[Resource]) -> list[Resource]:
    """Sites on a Flex Consumption plan declared in the same file (or with functionAppConfig,
    which only Flex Consumption sites have)."""
    declared = [r for r in resources if not r.existing]
    plans = {r.symbol for r in declared if _is_type(r, WEB_PLANS) and _is_flex_plan(r)}
    sites = []
    for site in (r for r in declared if _is_type(r, WEB_SITES)):
        farm = site.properties.get("serverFarmId")
        on_flex_plan = isinstance(farm, str) and farm.removesuffix(".id") in plans
        if on_flex_plan or "functionAppConfig" in site.properties:
            sites.append(site)
    return sites


def _refused_properties(where: str, config: Any) -> Iterator[str]:
    if not isinstance(config, dict):
        return
    refused = {name.lower(): name for name in FLEX_REFUSED_SITE_PROPERTIES}
    for raw in config:
        key = key_text(raw).lower()
        if key in refused:
            name = refused[key]
            yield f"{where}.{key_text(raw)}: {FLEX_REFUSED_SITE_PROPERTIES[name]}"


def _refused_settings(where: str, names: Iterable[str]) -> Iterator[str]:
    refused = {name.lower(): name for name in FLEX_REFUSED_APP_SETTINGS}
    for name in names:
        if name.lower() in refused:  # app setting names are case-insensitive
            yield f"{where} {name}: {FLEX_REFUSED_APP_SETTINGS[refused[name.lower()]]}"


def flex_problems(resources: list[Resource]) -> list[str]:
    """What a Flex Consumption site (and its config resources) sets that Azure refuses."""
    problems = []
    for site in flex_sites(resources):
        label = f"{site.file.name}:{site.symbol}"
        props = site.properties
        for problem in _refused_properties("properties", props):
            if not problem.startswith("properties.siteConfig"):
                problems.append(f"{label} {problem}")
        site_config = props.get("siteConfig")
        problems += [f"{label} {p}" for p in _refused_properties("properties.siteConfig", site_config)]
        if isinstance(site_config, dict):
            pairs = site_config.get("appSettings")
            if isinstance(pairs, list):
                names = [p["name"] for p in pairs if isinstance(p, dict) and isinstance(p.get("name"), str)]
                problems += [f"{label} {p}" for p in _refused_settings("siteConfig.appSettings", names)]
        for config in resources:
            if not _is_type(config, WEB_CONFIG) or config.body.get("parent") != site.symbol:
                continue
            where = f"{config.file.name}:{config.symbol}"
            name = config.body.get("name")
            if name == "appsettings":
                keys = [key_text(k) for k in config.properties]
                problems += [f"{where} {p}" for p in _refused_settings("appsettings", keys)]
            elif name == "web":
                problems += [f"{where} {p}" for p in _refused_properties("properties", config.properties)]
    return problems


# ------------------------------------------------------------------ wildcard role actions

# Operations of the kinds the built-in Contributor withholds with
# Microsoft.Authorization/*/Delete, */Write and elevateAccess/Action.
AUTHORIZATION_OPERATIONS = (
    "Microsoft.Authorization/locks/delete",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Authorization/roleDefinitions/delete",
    "Microsoft.Authorization/policyAssignments/delete",
    "Microsoft.Authorization/policyExemptions/delete",
    "Microsoft.Authorization/locks/write",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleDefinitions/write",
    "Microsoft.Authorization/policyAssignments/write",
    "Microsoft.Authorization/policyDefinitions/write",
    "Microsoft.Authorization/elevateAccess/Action",
)


def action_matches(pattern: str, operation: str) -> bool:
    """Azure RBAC: `*` matches any characters; operation names are case-insensitive."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, operation, flags=re.IGNORECASE) is not None


class Undecidable(Exception):
    """A value that the rule needs and that is not a literal it can follow."""


def evaluate_list(path: Path, value: Any, overrides: dict[str, Any] | None = None) -> list[str]:
    """A list of strings from a literal, a variable, a parameter (its default, or an
    override from the module call) or union() of those."""
    overrides = overrides or {}
    if isinstance(value, list):
        if not all(isinstance(v, str) and is_literal(v) for v in value):
            raise Undecidable(f"{path.name}: not a list of literal strings: {value!r}")
        return list(value)
    if isinstance(value, dict) and "function" in value and value["function"]["type"] == "union":
        args = [a for a in value["function"]["parameters"].values() if a is not None]
        out: list[str] = []
        for arg in args:
            out += [v for v in evaluate_list(path, arg, overrides) if v not in out]
        return out
    if isinstance(value, str) and not is_literal(value):
        if value in overrides:
            return evaluate_list(path, overrides[value])
        if value in variables(path):
            return evaluate_list(path, variables(path)[value], overrides)
        params = parameters(path)
        if value in params and params[value]["default"] is not None:
            return evaluate_list(path, params[value]["default"], overrides)
    raise Undecidable(f"{path.name}: cannot follow {value!r}")


def _depends_on_parameter(path: Path, value: Any) -> bool:
    if isinstance(value, str) and not is_literal(value):
        if value in parameters(path):
            return True
        if value in variables(path):
            return _depends_on_parameter(path, variables(path)[value])
    if isinstance(value, dict):
        return any(_depends_on_parameter(path, v) for v in value.values())
    if isinstance(value, list):
        return any(_depends_on_parameter(path, v) for v in value)
    return False


@dataclass(frozen=True)
class Grant:
    """One way the role's actions are set: the module's own defaults, or a caller's."""

    label: str
    overrides: dict[str, Any]


def _main_value(name: str) -> Any:
    """What main.bicep passes when it passes its parameter or variable `name` (its default)."""
    if name in variables(MAIN):
        return variables(MAIN)[name]
    params = parameters(MAIN)
    if name in params and params[name]["default"] is not None:
        return params[name]["default"]
    return name


def _grants(definition: Resource) -> list[Grant]:
    grants = [Grant("defaults", {})]
    for call in modules(MAIN).values():
        if call.path == definition.file.resolve():
            passed = {
                name: _main_value(value)
                for name, value in call.params.items()
                if isinstance(value, str) and not is_literal(value)
            }
            grants.append(Grant(f"main.bicep:{call.symbol}", passed))
    return grants


def role_problems(resources: list[Resource]) -> list[str]:
    problems = []
    for definition in resources:
        if definition.existing or definition.type.lower() != "microsoft.authorization/roledefinitions":
            continue
        label = f"{definition.file.name}:{definition.symbol}"
        for index, permission in enumerate(definition.properties.get("permissions", [])):
            where = f"{label} permissions[{index}]"
            raw_not = permission.get("notActions", [])
            if _depends_on_parameter(definition.file, raw_not):
                problems.append(f"{where}.notActions: must be a fixed list, not a parameter")
                continue
            try:
                not_actions = evaluate_list(definition.file, raw_not)
            except Undecidable as error:
                problems.append(f"{where}.notActions: {error}")
                continue
            for grant in _grants(definition):
                try:
                    actions = evaluate_list(definition.file, permission.get("actions", []), grant.overrides)
                except Undecidable as error:
                    problems.append(f"{where}.actions ({grant.label}): {error}")
                    continue
                for action in (a for a in actions if "*" in a):
                    for operation in AUTHORIZATION_OPERATIONS:
                        if action_matches(action, operation) and not any(
                            action_matches(n, operation) for n in not_actions
                        ):
                            problems.append(
                                f"{where} ({grant.label}): {action!r} grants {operation}; "
                                "withhold it in notActions as the built-in Contributor does"
                            )
    return problems


def all_problems() -> list[str]:
    resources = all_resources()
    return flex_problems(resources) + role_problems(resources)
