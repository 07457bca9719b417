"""Structural checks of the deployment templates (infra/), offline.

Checkov (run before these tests by `make test`) applies generic security
rules; these tests hold the templates to Dockmaster's own contract: every
setting the code reads is set, nothing secret is produced, every role is a
known one with a deterministic name on the narrowest scope, cleanup rights
exist only when cleanup is on, and the event wiring matches what the app
handles. Bodies against the Bicep types of their api-version:
test_bicep_types.py; rules Azure enforces beyond the types:
test_deployment_rules.py. `az bicep build --file infra/main.bicep` remains the
compile check to run where the Bicep CLI exists.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

from tests.infra.bicep_model import (
    GUID_RE,
    MAIN,
    MODULES,
    REPO_ROOT,
    SUBSCRIPTION,
    Resource,
    all_resources,
    bicep_files,
    code_without_comments,
    functions_called,
    modules,
    one_resource,
    outputs,
    param_default,
    parameters,
    parse,
    render,
    resolve,
    resources,
    resources_of_type,
    strings,
    target_scope,
    variables,
)

FUNCTION_APP = MODULES / "functionapp.bicep"
STORAGE = MODULES / "storage.bicep"
EVENTS = MODULES / "events.bicep"
MONITORING = MODULES / "monitoring.bicep"
REGISTRY = MODULES / "registry.bicep"
CLEANUP = MODULES / "cleanup-role.bicep"

# Settings in local.settings.sample.json that must NOT be app settings in Azure.
LOCAL_ONLY_SETTINGS = {
    "AzureWebJobsStorage": (
        "local connection string (Azurite); in Azure the host reaches storage by identity "
        "through AzureWebJobsStorage__{blob,queue,table}ServiceUri/__credential/__clientId, with no key"
    ),
    "FUNCTIONS_WORKER_RUNTIME": (
        "Flex Consumption takes the language from functionAppConfig.runtime and does not "
        "accept it as an app setting"
    ),
}

# Built-in roles the templates may assign, by role definition id.
BUILT_IN_ROLES = {
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
    "2a1e307c-b015-4ebd-883e-5b7698a07328": "Container Registry Repository Writer",
    "bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7": "Container Registry Repository Catalog Lister",
    "fb382eab-e894-4461-af04-94435c366c3f": "Container Registry Tasks Contributor",
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11": "AcrDelete",
    "2efddaa5-3f1f-4df3-97df-af3f13818f4c": "Container Registry Repository Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
CUSTOM_CLEANUP_ROLE = "custom: Dockmaster lab cleanup"

# Every role assignment: (role, type of the resource it is scoped to, condition).
EXPECTED_ASSIGNMENTS = {
    ("AcrPull", "Microsoft.ContainerRegistry/registries", "!registryAbacMode"),
    ("AcrPush", "Microsoft.ContainerRegistry/registries", "!registryAbacMode"),
    ("Container Registry Repository Writer", "Microsoft.ContainerRegistry/registries", "registryAbacMode"),
    (
        "Container Registry Repository Catalog Lister",
        "Microsoft.ContainerRegistry/registries",
        "registryAbacMode",
    ),
    ("Container Registry Tasks Contributor", "Microsoft.ContainerRegistry/registries", ""),
    ("AcrDelete", "Microsoft.ContainerRegistry/registries", "and(retentionEnabled, !registryAbacMode)"),
    (
        "Container Registry Repository Contributor",
        "Microsoft.ContainerRegistry/registries",
        "and(retentionEnabled, registryAbacMode)",
    ),
    ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", ""),
    ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", ""),
    ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", ""),
    ("Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts/blobServices/containers", ""),
    ("Storage Table Data Reader", "Microsoft.Storage/storageAccounts", "!empty(developerPrincipalId)"),
    ("Monitoring Metrics Publisher", "Microsoft.Insights/components", ""),
    ("EventGrid Data Sender", "Microsoft.EventGrid/topics", ""),
    (CUSTOM_CLEANUP_ROLE, "subscription", "cleanupEnabled"),
}

# The documented API version used for each resource type.
API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2023-05-01",
    "Microsoft.ContainerRegistry/registries": "2025-11-01",
    "Microsoft.EventGrid/systemTopics": "2025-02-15",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "2025-02-15",
    "Microsoft.EventGrid/topics": "2025-02-15",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-04-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Authorization/roleDefinitions": "2022-04-01",
}

ACR_EVENT_TYPES = ["Microsoft.ContainerRegistry.ImagePushed", "Microsoft.ContainerRegistry.ImageDeleted"]


def sample_settings() -> dict[str, str]:
    values = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())["Values"]
    assert isinstance(values, dict)
    return values


def app_settings() -> dict[str, object]:
    [config] = [
        r
        for r in resources_of_type(FUNCTION_APP, "Microsoft.Web/sites/config")
        if r.body["name"] == "appsettings"
    ]
    assert config.condition is None, "app settings must always be deployed"
    return config.properties


def main_module(symbol: str):
    return modules(MAIN)[symbol]


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_template_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_templates_named_in_comments_exist(path: Path) -> None:
    """A comment that points to another template points to one that exists."""
    for line in path.read_text().splitlines():
        comment = line.partition("//")[2]
        for name in re.findall(r"[\w./-]+\.bicep", comment):
            candidates = [path.parent / name, MODULES / name, REPO_ROOT / "infra" / name, REPO_ROOT / name]
            assert any(c.is_file() for c in candidates), f"{path.name}: a comment names {name}"


def _pin(requirements: str, package: str) -> str:
    text = (REPO_ROOT / requirements).read_text()
    found = re.search(rf"^{re.escape(package)}==(\S+)", text, flags=re.M | re.I)
    assert found, f"{requirements} does not pin {package}"
    return found.group(1)


def test_the_parser_is_the_one_checkov_uses() -> None:
    """tests/infra (.venv) and Checkov (.venv-infra) must read the templates alike."""
    pinned = _pin("requirements-dev.txt", "pycep-parser")
    assert pinned == _pin("requirements-infra.txt", "pycep-parser"), "bump pycep-parser with Checkov"
    assert importlib.metadata.version("pycep-parser") == pinned


def test_the_expected_templates_exist() -> None:
    names = {p.relative_to(REPO_ROOT).as_posix() for p in bicep_files()}
    assert {"infra/main.bicep", "infra/subscription.bicep"} <= names
    assert target_scope(MAIN) == "subscription"
    assert target_scope(SUBSCRIPTION) == "resourceGroup"


def test_main_module_calls_match_the_modules() -> None:
    """Every module exists, gets only parameters it declares and every one it requires."""
    for call in modules(MAIN).values():
        assert call.path.is_file(), f"{call.symbol}: {call.path} missing"
        declared = parameters(call.path)
        passed = set(call.params)
        assert passed <= set(declared), f"{call.symbol}: unknown params {passed - set(declared)}"
        required = {name for name, p in declared.items() if p["default"] is None}
        assert required <= passed, f"{call.symbol}: missing params {required - passed}"


def test_module_outputs_used_in_main_exist() -> None:
    text = json.dumps(parse(MAIN))
    calls = modules(MAIN)
    used = set(re.findall(r"\b(\w+)\.outputs\.(\w+)", text))
    assert used, "main.bicep uses no module output"
    for symbol, output in used:
        assert symbol in calls, f"{symbol} is not a module"
        assert output in outputs(calls[symbol].path), f"{symbol} has no output {output}"


def test_api_versions_are_the_documented_ones() -> None:
    for resource in all_resources():
        assert resource.type in API_VERSIONS, (
            f"{resource.file.name}:{resource.symbol}: unexpected type {resource.type}"
        )
        assert resource.api_version == API_VERSIONS[resource.type], (
            f"{resource.file.name}:{resource.symbol}: {resource.type}@{resource.api_version}"
        )


# ------------------------------------------------------------------ app settings


def test_local_only_settings_are_in_the_sample() -> None:
    # A stale exemption would silently hide a setting the app no longer reads locally.
    assert set(LOCAL_ONLY_SETTINGS) <= set(sample_settings())


def test_every_setting_the_code_reads_is_set() -> None:
    required = set(sample_settings()) - set(LOCAL_ONLY_SETTINGS)
    missing = required - set(app_settings())
    assert not missing, f"app settings missing from functionapp.bicep: {sorted(missing)}"


def test_local_only_settings_are_not_set() -> None:
    assert not set(LOCAL_ONLY_SETTINGS) & set(app_settings())


def test_host_storage_is_reached_by_identity() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage__accountName" not in settings, "the host would derive public-cloud URIs"
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == f"storage{service.title()}Endpoint"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings


def test_settings_come_from_the_right_places() -> None:
    settings = app_settings()
    fn = main_module("functionApp").params

    # The identity's client id, for DefaultAzureCredential.
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert fn["identityClientId"] == "identity.outputs.clientId"
    assert outputs(MODULES / "identity.bicep")["clientId"]["value"] == "identity.properties.clientId"

    # Cloud endpoints from the deployment's environment, never hard-coded.
    assert render(settings["AZURE_RESOURCE_MANAGER_ENDPOINT"]) == "environment().resourceManager"
    assert render(settings["AZURE_AUTHORITY_HOST"]) == "environment().authentication.loginEndpoint"
    assert render(settings["AZURE_SUBSCRIPTION_ID"]).startswith("subscription(")
    assert render(settings["AZURE_TENANT_ID"]).startswith("tenant()")

    # The registry's resource id, new or existing.
    assert settings["DOCKMASTER_REGISTRIES"] == "registries"
    assert fn["registries"] == "registryId"
    assert (
        render(variables(MAIN)["registryId"])
        == "conditional(useExistingRegistry, existingRegistryResourceId, newRegistryId)"
    )

    # The custom topic's endpoint.
    assert settings["DOCKMASTER_EVENTS_TOPIC_ENDPOINT"] == "eventsTopicEndpoint"
    assert fn["eventsTopicEndpoint"] == "events.outputs.customTopicEndpoint"
    assert outputs(EVENTS)["customTopicEndpoint"]["value"] == "customTopic.properties.endpoint"

    assert settings["DOCKMASTER_APP_RESOURCE_GROUP"] == "appResourceGroupName"
    assert fn["appResourceGroupName"] == "rg.name"

    # Cleanup settings from parameters of main.bicep, with the sample's defaults.
    sample = sample_settings()
    for name in (n for n in sample if n.startswith(("CLEANUP_", "RETENTION_"))):
        rendered = render(settings[name])
        [param] = [p for p in parameters(FUNCTION_APP) if p.lower() == name.replace("_", "").lower()]
        assert param in rendered, f"{name} = {rendered}, not from parameter {param}"
        assert fn[param] == param, f"main.bicep passes {fn[param]} as {param}"
        default = param_default(MAIN, param)
        if isinstance(default, bool):
            default = "true" if default else "false"
        assert str(default) == sample[name], (
            f"{name}: main.bicep default {default!r}, sample {sample[name]!r}"
        )


def test_table_and_queue_names_match_the_sample() -> None:
    sample = sample_settings()
    settings = app_settings()
    fn = main_module("functionApp").params
    assert settings["DOCKMASTER_VERDICTS_TABLE"] == "verdictsTableName"
    assert fn["verdictsTableName"] == "storage.outputs.verdictsTableName"
    assert resolve(MAIN, "verdictsTableName") == sample["DOCKMASTER_VERDICTS_TABLE"] == "verdicts"
    assert settings["DOCKMASTER_RUNS_QUEUE"] == "runsQueueName"
    assert fn["runsQueueName"] == "storage.outputs.runsQueueName"
    assert resolve(MAIN, "runsQueueName") == sample["DOCKMASTER_RUNS_QUEUE"] == "verification-runs"
    assert resolve(MAIN, "policyPath") == sample["DOCKMASTER_POLICY_PATH"]


# ------------------------------------------------------------------ no secrets


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_no_key_is_listed_or_embedded(path: Path) -> None:
    code = code_without_comments(path)
    assert not re.search(r"\blist[A-Z]\w*\s*\(", code), "list*() returns keys or secrets"
    assert not re.search(r"\.list[A-Z]\w*\s*\(", code)
    for called in functions_called(parse(path)):
        assert not called["type"].lower().startswith("list"), called
    for text in strings(parse(path)):
        for marker in ("AccountKey=", "SharedAccessKey", "SharedAccessSignature", "DefaultEndpointsProtocol"):
            assert marker not in text, f"{path.name}: {text}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_no_secure_value_is_output(path: Path) -> None:
    secure_params = {
        name for name, p in parameters(path).items() if any(d["type"] == "secure" for d in p["decorators"])
    } | {name for name, p in parameters(path).items() if str(p["type"]).lower().startswith("secure")}
    for name, output in outputs(path).items():
        assert not any(d["type"] == "secure" for d in output["decorators"]), f"@secure() output {name}"
        assert not str(output["type"]).lower().startswith("secure"), f"secure output {name}"
        referenced = set(re.findall(r"\w+", json.dumps(output["value"])))
        assert not referenced & secure_params, f"output {name} leaks {referenced & secure_params}"


# Outputs whose names look like secrets but are not: the reason for each.
NOT_SECRET_OUTPUTS = {
    ("monitoring.bicep", "connectionString"): (
        "Application Insights connection string: an ingestion endpoint and an instrumentation key, "
        "an identifier that cannot send telemetry because local auth is disabled"
    ),
}


def test_no_secret_like_outputs() -> None:
    pattern = re.compile(r"key|secret|password|connectionstring|sas|token", re.I)
    for path in bicep_files():
        for name in outputs(path):
            if pattern.search(name):
                assert (path.name, name) in NOT_SECRET_OUTPUTS, f"{path.name}: output {name}"
    # And nothing of that kind reaches azd's .env file.
    assert not [name for name in outputs(MAIN) if pattern.search(name)]


def test_no_secret_like_settings() -> None:
    allowed = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}  # see NOT_SECRET_OUTPUTS
    for name, value in app_settings().items():
        if name in allowed:
            continue
        assert not re.search(r"KEY|SECRET|PASSWORD|CONNECTION_STRING|SAS", name, re.I), name
        assert "AccountKey" not in json.dumps(value)


# ------------------------------------------------------------------ roles


def _scope_type(resource: Resource, file_resources: dict[str, Resource]) -> str:
    scope = resource.body.get("scope")
    if scope is None:
        return target_scope(resource.file)
    assert isinstance(scope, str), f"{resource.symbol}: scope must name a resource"
    target = file_resources[scope.replace("::", "__")]
    return target.type


def _role_name(resource: Resource, file_resources: dict[str, Resource]) -> str:
    role_id = resource.properties["roleDefinitionId"]
    if isinstance(role_id, str):  # a role definition declared in the same file
        symbol = role_id.removesuffix(".id")
        definition = file_resources[symbol]
        assert definition.type == "Microsoft.Authorization/roleDefinitions"
        assert definition.properties["type"] == "CustomRole"
        return CUSTOM_CLEANUP_ROLE
    fn = role_id["function"]
    assert fn["type"] == "subscription_resource_id", f"{resource.symbol}: use subscriptionResourceId()"
    assert fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    guid = resolve(resource.file, fn["parameters"]["resource_name_1"])
    assert GUID_RE.match(guid), f"{resource.symbol}: {guid} is not a role id"
    assert guid in BUILT_IN_ROLES, f"{resource.symbol}: unknown role {guid}"
    return BUILT_IN_ROLES[guid]


def role_assignments() -> list[tuple[str, str, str, Resource]]:
    found = []
    for path in bicep_files():
        file_resources = resources(path)
        for resource in file_resources.values():
            if resource.type != "Microsoft.Authorization/roleAssignments":
                continue
            found.append(
                (
                    _role_name(resource, file_resources),
                    _scope_type(resource, file_resources),
                    render(resource.condition),
                    resource,
                )
            )
    return found


def test_role_assignments_are_exactly_the_expected_ones() -> None:
    actual = [(role, scope, condition) for role, scope, condition, _ in role_assignments()]
    assert len(actual) == len(set(actual)), "a role is assigned twice"
    assert set(actual) == EXPECTED_ASSIGNMENTS


def test_role_assignment_names_are_deterministic_guids() -> None:
    for _role, _, _, resource in role_assignments():
        name = resource.body["name"]
        assert isinstance(name, dict), f"{resource.symbol}: name must be guid(...)"
        assert name["function"]["type"] == "guid", f"{resource.symbol}: name must be guid(...)"
        args = [a for a in name["function"]["parameters"].values() if a is not None]
        # Scope, principal and role: one assignment per triple, stable across runs.
        assert len(args) >= 3, f"{resource.symbol}: guid() needs scope, principal and role"
        assert resource.properties["principalId"] in json.dumps(args), (
            f"{resource.symbol}: guid() omits the principal"
        )


def test_role_assignments_are_never_wider_than_a_resource() -> None:
    for role, scope, _, resource in role_assignments():
        if role == CUSTOM_CLEANUP_ROLE:
            continue  # resource groups are subscription children: nothing narrower exists
        assert scope not in {"subscription", "resourceGroup", "Microsoft.Resources/resourceGroups"}, (
            f"{resource.file.name}:{resource.symbol} ({role}) is scoped to a {scope}"
        )
        assert target_scope(resource.file) == "resourceGroup"


def test_app_roles_go_to_service_principals() -> None:
    for role, _, _, resource in role_assignments():
        if role == "Storage Table Data Reader":
            assert resource.properties["principalId"] == "developerPrincipalId"
            continue  # the developer may be a user or a service principal
        assert resource.properties["principalType"] == "ServicePrincipal", resource.symbol


def test_registry_rights_are_granted_where_the_registry_is() -> None:
    call = main_module("registryAccess")
    assert render(call.body["scope"]) == "resource_group(registryResourceGroupName, registrySubscriptionId)"
    assert call.params["principalId"] == "identity.outputs.principalId"
    assert call.params["registryName"] == "registryName"


def test_dead_letter_role_goes_to_the_system_topic() -> None:
    call = main_module("storageAccess")
    assert call.params["systemTopicPrincipalId"] == "events.outputs.systemTopicPrincipalId"
    assert outputs(EVENTS)["systemTopicPrincipalId"]["value"] == "systemTopic.identity.principalId"
    topic = resources(EVENTS)["systemTopic"]
    assert topic.body["identity"]["type"] == "SystemAssigned"
    [(_, _, _, assignment)] = [a for a in role_assignments() if a[0] == "Storage Blob Data Contributor"]
    assert assignment.properties["principalId"] == "systemTopicPrincipalId"


# ------------------------------------------------------------------ cleanup role


def test_cleanup_role_is_conditional_on_cleanup_enabled() -> None:
    [definition] = resources_of_type(CLEANUP, "Microsoft.Authorization/roleDefinitions")
    [assignment] = resources_of_type(CLEANUP, "Microsoft.Authorization/roleAssignments")
    assert render(definition.condition) == "cleanupEnabled"
    assert render(assignment.condition) == "cleanupEnabled"
    assert param_default(CLEANUP, "cleanupEnabled") is False
    assert target_scope(CLEANUP) == "subscription"

    call = main_module("cleanupRole")
    assert call.params["cleanupEnabled"] == "cleanupEnabled"
    assert param_default(MAIN, "cleanupEnabled") is False
    assert call.params["principalId"] == "identity.outputs.principalId"


def test_cleanup_role_lists_what_cleanup_does() -> None:
    [definition] = resources_of_type(CLEANUP, "Microsoft.Authorization/roleDefinitions")
    assert definition.body["name"]["function"]["type"] == "guid"
    [permission] = definition.properties["permissions"]
    actions = permission["actions"]
    assert actions["function"]["type"] == "union"
    group_actions = resolve(CLEANUP, actions["function"]["parameters"]["arg_1"])
    assert sorted(group_actions) == sorted(
        [
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write",
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
            "Microsoft.Authorization/locks/read",
        ]
    )
    extra = param_default(CLEANUP, actions["function"]["parameters"]["arg_2"])
    assert all(action.endswith("/delete") for action in extra), extra
    assert "*" not in group_actions + extra
    # The built-in Contributor's notActions, fixed (test_deployment_rules checks what they cover).
    not_actions = resolve(CLEANUP, permission["notActions"])
    assert not_actions[:3] == [
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
    ]
    assert permission["notActions"] not in parameters(CLEANUP)
    assert permission["dataActions"] == []
    assert permission["notDataActions"] == []
    assert [render(s) for s in definition.properties["assignableScopes"]] == ["subscription().id"]


# ------------------------------------------------------------------ resources


def test_storage_is_identity_only() -> None:
    storage = one_resource(STORAGE, "Microsoft.Storage/storageAccounts")
    props = storage.properties
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True


def test_storage_replication_is_lrs_unless_zrs_is_chosen() -> None:
    storage = one_resource(STORAGE, "Microsoft.Storage/storageAccounts")
    assert storage.body["sku"] == {"name": "sku"}
    for path, name in ((STORAGE, "sku"), (MAIN, "storageSku")):
        assert param_default(path, name) == "Standard_LRS"
        [allowed] = [d for d in parameters(path)[name]["decorators"] if d["type"] == "allowed"]
        assert allowed["argument"] == ["Standard_LRS", "Standard_ZRS"]
    assert main_module("storage").params["sku"] == "storageSku"


def test_storage_has_what_the_app_uses() -> None:
    """The table, the queues (with the poison queue) and the two containers."""
    names: dict[str, set[str]] = {}
    for r in resources(STORAGE).values():
        names.setdefault(r.type.rsplit("/", 1)[-1], set()).add(r.body["name"])

    # main.bicep passes its own names, which must be the ones the app reads.
    call = main_module("storage").params
    for param in ("verdictsTableName", "runsQueueName", "deadLetterContainerName", "deploymentContainerName"):
        assert call[param] == param
    verdicts = resolve(MAIN, "verdictsTableName")
    runs = resolve(MAIN, "runsQueueName")
    assert verdicts == param_default(STORAGE, "verdictsTableName") == "verdicts"
    assert runs == param_default(STORAGE, "runsQueueName") == "verification-runs"
    dead_letter = resolve(MAIN, "deadLetterContainerName")
    assert dead_letter == param_default(STORAGE, "deadLetterContainerName") == "eventgrid-deadletter"

    assert names["tables"] == {"verdictsTableName"}
    assert names["queues"] == {"runsQueueName", "${runsQueueName}-poison"}
    assert names["containers"] == {"deploymentContainerName", "deadLetterContainerName"}
    for container in resources_of_type(STORAGE, "Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert container.properties["publicAccess"] == "None"


def test_monitoring_accepts_entra_id_only() -> None:
    insights = one_resource(MONITORING, "Microsoft.Insights/components")
    assert insights.properties["DisableLocalAuth"] is True
    assert insights.properties["WorkspaceResourceId"] == "workspace.id"
    workspace = one_resource(MONITORING, "Microsoft.OperationalInsights/workspaces")
    assert workspace.properties["features"]["disableLocalAuth"] is True


def test_custom_topic_accepts_entra_id_only() -> None:
    topic = one_resource(EVENTS, "Microsoft.EventGrid/topics")
    assert topic.body["identity"] == {"type": "SystemAssigned"}
    assert topic.properties["disableLocalAuth"] is True
    assert topic.properties["inputSchema"] == "CloudEventSchemaV1_0"
    assert topic.properties["minimumTlsVersionAllowed"] == "1.2"


def test_system_topic_listens_to_the_registry() -> None:
    topic = resources(EVENTS)["systemTopic"]
    assert topic.properties["topicType"] == "Microsoft.ContainerRegistry.Registries"
    assert topic.properties["source"] == "registryId"
    assert topic.body["location"] == "registryLocation"
    call = main_module("events").params
    assert call["registryId"] == "registryId"
    assert call["registryLocation"] == "registryAccess.outputs.location"


def test_registry_is_basic_without_admin_user_unless_one_is_given() -> None:
    registry = one_resource(REGISTRY, "Microsoft.ContainerRegistry/registries")
    assert registry.properties["adminUserEnabled"] is False
    assert registry.properties["anonymousPullEnabled"] is False
    # Created in the mode whose roles registry-access.bicep grants.
    assert (
        render(registry.properties["roleAssignmentMode"])
        == "conditional(abacMode, AbacRepositoryPermissions, LegacyRegistryPermissions)"
    )
    assert param_default(REGISTRY, "abacMode") is False
    assert main_module("registry").params["abacMode"] == "registryAbacMode"
    assert main_module("registryAccess").params["registryAbacMode"] == "registryAbacMode"
    # Zone redundancy is the platform default in every tier; the old opt-in stays unset.
    assert "zoneRedundancy" not in registry.properties
    assert param_default(MAIN, "registrySku") == "Basic"
    assert param_default(MAIN, "existingRegistryResourceId") == ""
    call = main_module("registry")
    assert render(call.condition) == "!useExistingRegistry"
    assert render(variables(MAIN)["useExistingRegistry"]) == "!empty(existingRegistryResourceId)"


def test_function_app_is_flex_consumption_python() -> None:
    plan = one_resource(FUNCTION_APP, "Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan.properties["reserved"] is True

    site = one_resource(FUNCTION_APP, "Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    assert site.body["identity"]["type"] == "UserAssigned"
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert param_default(FUNCTION_APP, "pythonVersion") == "3.11"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_function_app_transport_and_publishing_are_locked_down() -> None:
    site = one_resource(FUNCTION_APP, "Microsoft.Web/sites")
    assert site.properties["httpsOnly"] is True
    site_config = site.properties["siteConfig"]
    # Flex Consumption refuses ftpsState (test_deployment_rules); the ftp policy turns FTP off.
    assert "ftpsState" not in site_config
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["scmMinTlsVersion"] == "1.2"
    policies = {
        r.body["name"]: r
        for r in resources_of_type(FUNCTION_APP, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert set(policies) == {"ftp", "scm"}
    for policy in policies.values():
        assert policy.properties["allow"] is False
        assert policy.condition is None


def test_function_app_sets_no_dedicated_plan_site_config() -> None:
    """Flex Consumption offers no platform health check and no instance count on the site.

    Checkov asks for both (CKV_AZURE_213, CKV_AZURE_212); the template skips them with
    the reason instead of setting properties the plan does not support.
    """
    site_config = one_resource(FUNCTION_APP, "Microsoft.Web/sites").properties["siteConfig"]
    for name in ("healthCheckPath", "numberOfWorkers", "alwaysOn", "linuxFxVersion"):
        assert name not in site_config, name


def test_function_app_is_the_azd_api_service() -> None:
    site = one_resource(FUNCTION_APP, "Microsoft.Web/sites")
    tags = site.body["tags"]["function"]["parameters"]["arg_2"]
    assert tags == {"'azd-service-name'": "azdServiceName"}
    assert main_module("functionApp").params["azdServiceName"] == "api"


def test_authentication_is_optional_and_spares_the_event_grid_webhook() -> None:
    [auth] = [
        r
        for r in resources_of_type(FUNCTION_APP, "Microsoft.Web/sites/config")
        if r.body["name"] == "authsettingsV2"
    ]
    assert render(auth.condition) == "authEnabled"
    assert param_default(MAIN, "authEnabled") is False
    props = auth.properties
    assert props["platform"]["enabled"] is True
    assert props["globalValidation"]["requireAuthentication"] is True
    assert "/runtime/webhooks/eventgrid" in props["globalValidation"]["excludedPaths"]
    assert props["identityProviders"]["azureActiveDirectory"]["enabled"] is True


# ------------------------------------------------------------------ event subscription


def test_event_subscription_is_not_in_the_provisioning_template() -> None:
    # It is created by the postdeploy hook, once on_image_event exists.
    for path in bicep_files():
        if path != SUBSCRIPTION:
            assert not resources_of_type(path, "Microsoft.EventGrid/systemTopics/eventSubscriptions"), (
                path.name
            )
    assert "subscription.bicep" not in json.dumps(parse(MAIN))


def test_event_subscription_delivers_image_events_to_the_function() -> None:
    sub = resources(SUBSCRIPTION)["imageEvents"]
    assert sub.condition is None
    props = sub.properties
    assert props["filter"]["includedEventTypes"] == ACR_EVENT_TYPES
    destination = props["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${site.id}/functions/${functionName}"
    assert param_default(SUBSCRIPTION, "functionName") == "on_image_event"
    site = resources(SUBSCRIPTION)["site"]
    assert site.existing
    assert site.type == "Microsoft.Web/sites"


def test_event_subscription_retries_then_dead_letters_by_identity() -> None:
    sub = resources(SUBSCRIPTION)["imageEvents"]
    props = sub.properties
    retry = props["retryPolicy"]
    assert resolve(SUBSCRIPTION, retry["maxDeliveryAttempts"]) == 30
    assert resolve(SUBSCRIPTION, retry["eventTimeToLiveInMinutes"]) == 1440
    assert "deadLetterDestination" not in props, "dead-letter with the topic's identity, not a key"
    dead_letter = props["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    destination = dead_letter["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    assert resolve(SUBSCRIPTION, destination["properties"]["blobContainerName"]) == "eventgrid-deadletter"
    assert destination["properties"]["resourceId"] == "deadLetterStorage.id"


def test_resource_events_topic_listens_to_the_subscription() -> None:
    topic = resources(EVENTS)["resourceEventsTopic"]
    assert topic.properties["topicType"] == "Microsoft.Resources.Subscriptions"
    assert topic.properties["source"]["function"]["type"] == "subscription"
    assert topic.properties["source"]["function"]["property_name"] == "id"
    assert topic.body["location"] == "global"
    assert "identity" not in topic.body, "nothing to dead-letter with: no identity to grant"
    assert outputs(MAIN)["EVENTGRID_RESOURCE_EVENTS_TOPIC_NAME"]["value"] == (
        "events.outputs.resourceEventsTopicName"
    )


def test_group_writes_go_to_the_stamp_function_filtered_to_resource_groups() -> None:
    sub = resources(SUBSCRIPTION)["groupWrites"]
    assert sub.condition is None
    props = sub.properties
    assert props["filter"]["includedEventTypes"] == ["Microsoft.Resources.ResourceWriteSuccess"]
    assert props["filter"]["advancedFilters"] == [
        {
            "operatorType": "StringIn",
            "key": "data.operationName",
            "values": ["Microsoft.Resources/subscriptions/resourceGroups/write"],
        }
    ]
    destination = props["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${site.id}/functions/${stampFunctionName}"
    assert param_default(SUBSCRIPTION, "stampFunctionName") == "on_resource_event"
    assert resolve(SUBSCRIPTION, props["retryPolicy"]["maxDeliveryAttempts"]) == 30
