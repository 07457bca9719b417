// Dockmaster on Azure: `azd up` provisions this template, then deploys the app,
// then runs the postdeploy hook (azure.yaml) that deploys subscription.bicep
// (the registry -> on_image_event Event Grid subscription, which can only be
// created once the function exists).
//
// Subscription scope, because it creates the resource group and, when cleanup
// is enabled, a custom role at subscription scope.

targetScope = 'subscription'

// ---------------------------------------------------------------- parameters

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region for all resources (the system topic follows the registry\'s region). Must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person or principal running azd (AZURE_PRINCIPAL_ID). When set, it may read the verdicts table; nothing else.')
param principalId string = ''

@description('Name of the resource group to create; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Resource id of an existing registry to verify instead of creating one: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.ContainerRegistry/registries/<name>. It must be in the same subscription.')
param existingRegistryResourceId string = ''

@description('SKU of the registry created when existingRegistryResourceId is empty.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param registrySku string = 'Basic'

@description('True when the registry uses "RBAC Registry + ABAC Repository Permissions" mode (Repository Writer and Catalog Lister replace AcrPull and AcrPush). A registry this template creates is created in that mode.')
param registryAbacMode bool = false

@description('DOCKMASTER_POLICY_PATH: verification policy file, relative to the app root.')
param policyPath string = 'policy.yaml'

@description('Upper bound on Flex Consumption instances.')
param maximumInstanceCount int = 40

@description('Replication of the storage account: Standard_LRS, or Standard_ZRS (zone-redundant; regions with availability zones only).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param storageSku string = 'Standard_LRS'

@description('Grant the cleanup role (custom, subscription scope) and turn the cleanup timer on.')
param cleanupEnabled bool = false

@description('CLEANUP_DRY_RUN: plan and report, delete nothing. Stays true until you have read a few plans.')
param cleanupDryRun bool = true

@description('CLEANUP_SCHEDULE (NCRONTAB, six fields).')
param cleanupSchedule string = '0 0 * * * *'

@description('CLEANUP_MAX_DELETIONS per run.')
param cleanupMaxDeletions int = 10

@description('CLEANUP_LAB_TAG: marker tag of lab groups, name=value.')
param cleanupLabTag string = 'purpose=lab'

@description('CLEANUP_NAME_PATTERNS: comma-separated name globs of lab groups.')
param cleanupNamePatterns string = 'az204-*'

@description('CLEANUP_PROTECTED_GROUPS: comma-separated names never deleted.')
param cleanupProtectedGroups string = ''

@description('CLEANUP_SUBSCRIPTIONS: comma-separated subscription ids; empty means this one (the only one the role is granted in).')
param cleanupSubscriptions string = ''

@description('CLEANUP_TTL_HOURS')
param cleanupTtlHours int = 72

@description('CLEANUP_GRACE_HOURS')
param cleanupGraceHours int = 24

@description('CLEANUP_WARNING_HOURS')
param cleanupWarningHours int = 12

@description('CLEANUP_MAX_EXTENSION_HOURS: an extended lab expires at most this far from now.')
param cleanupMaxExtensionHours int = 168

@description('CLEANUP_EXPIRY_TAG: the tag holding a lab\'s expiry (ISO 8601, or relative: 72h, 3d, 90m).')
param cleanupExpiryTag string = 'expiresOn'

@description('CLEANUP_CREATION_TAGS: comma-separated tags holding a creation time (expiry = creation + TTL).')
param cleanupCreationTags string = 'createdAt,creationTimestamp'

@description('CLEANUP_PROTECTION_TAG: comma-separated tag names that protect a group, whatever their value.')
param cleanupProtectionTag string = 'do-not-delete'

@description('CLEANUP_OWNER_TAG: the tag naming a lab\'s owner in its warning (else its createdBy tag).')
param cleanupOwnerTag string = 'owner'

@description('CLEANUP_LINK_HOURS: the hours a lab warning\'s extend link adds.')
param cleanupLinkHours int = 24

@description('Turn image retention on (RETENTION_ENABLED) and grant the app the right to delete images on the registry (AcrDelete, or Container Registry Repository Contributor in ABAC mode).')
param retentionEnabled bool = false

@description('RETENTION_DRY_RUN: plan and report, delete nothing. Stays true until you have read a few plans.')
param retentionDryRun bool = true

@description('RETENTION_SCHEDULE (NCRONTAB, six fields): daily by default.')
param retentionSchedule string = '0 30 2 * * *'

@description('RETENTION_MAX_DELETIONS per repository and run.')
param retentionMaxDeletions int = 100

@description('RETENTION_MAX_DELETION_PERCENT: at most this share of a repository\'s manifests per run.')
param retentionMaxDeletionPercent int = 50

@description('RETENTION_MIN_AGE_HOURS: no image younger than this is touched.')
param retentionMinAgeHours int = 24

@description('Delete actions the cleanup role has on resources inside lab groups (see modules/cleanup-role.bicep). The default */delete covers whatever a lab holds; narrow it to the types your labs use, for example [\'Microsoft.Web/*/delete\', \'Microsoft.Storage/*/delete\']. Authorization objects (locks, role and policy assignments) are excluded either way.')
param cleanupResourceDeleteActions array = [
  '*/delete'
]

@description('Put App Service authentication (Entra ID) in front of the API.')
param authEnabled bool = false

@description('Application (client) id of the Entra app registration for the API (when authEnabled).')
param authClientId string = ''

@description('Accepted token audiences (when authEnabled); default api://<authClientId> and the client id.')
param authAllowedAudiences array = []

// ---------------------------------------------------------------- names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var functionAppName = 'func-dockmaster-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var deadLetterContainerName = 'eventgrid-deadletter'
var verdictsTableName = 'verdicts'
var runsQueueName = 'verification-runs'

// The registry: a new one in the app's group, or the one given. Its id is
// computed from parameters either way, so the module that grants rights on it
// can be scoped to its resource group at the start of the deployment.
var useExistingRegistry = !empty(existingRegistryResourceId)
var newRegistryName = 'crdockmaster${resourceToken}'
var newRegistryId = '${subscription().id}/resourceGroups/${rgName}/providers/Microsoft.ContainerRegistry/registries/${newRegistryName}'
var registryId = useExistingRegistry ? existingRegistryResourceId : newRegistryId
var registryIdParts = split(registryId, '/')
var registrySubscriptionId = registryIdParts[2]
var registryResourceGroupName = registryIdParts[4]
var registryName = registryIdParts[8]

// ---------------------------------------------------------------- resources

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-dockmaster-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-dockmaster-${resourceToken}'
    applicationInsightsName: 'appi-dockmaster-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stdock${resourceToken}'
    location: location
    tags: tags
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    verdictsTableName: verdictsTableName
    runsQueueName: runsQueueName
  }
}

module registry 'modules/registry.bicep' = if (!useExistingRegistry) {
  name: 'registry'
  scope: rg
  params: {
    name: newRegistryName
    location: location
    tags: tags
    sku: registrySku
    abacMode: registryAbacMode
  }
}

module registryAccess 'modules/registry-access.bicep' = {
  name: 'registry-access-${resourceToken}'
  scope: resourceGroup(registrySubscriptionId, registryResourceGroupName)
  params: {
    registryName: registryName
    principalId: identity.outputs.principalId
    registryAbacMode: registryAbacMode
    retentionEnabled: retentionEnabled
  }
  dependsOn: [
    registry
  ]
}

module events 'modules/events.bicep' = {
  name: 'events'
  scope: rg
  params: {
    systemTopicName: 'evgst-acr-${resourceToken}'
    registryId: registryId
    registryLocation: registryAccess.outputs.location
    resourceEventsTopicName: 'evgst-resources-${resourceToken}'
    customTopicName: 'evgt-dockmaster-${resourceToken}'
    location: location
    tags: tags
  }
}

module storageAccess 'modules/storage-access.bicep' = {
  name: 'storage-access'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    appPrincipalId: identity.outputs.principalId
    systemTopicPrincipalId: events.outputs.systemTopicPrincipalId
    developerPrincipalId: principalId
  }
}

module monitoringAccess 'modules/monitoring-access.bicep' = {
  name: 'monitoring-access'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
  }
}

module topicAccess 'modules/topic-access.bicep' = {
  name: 'topic-access'
  scope: rg
  params: {
    customTopicName: events.outputs.customTopicName
    principalId: identity.outputs.principalId
  }
}

module cleanupRole 'modules/cleanup-role.bicep' = {
  name: 'cleanup-role-${resourceToken}'
  params: {
    cleanupEnabled: cleanupEnabled
    environmentName: environmentName
    principalId: identity.outputs.principalId
    resourceDeleteActions: cleanupResourceDeleteActions
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-dockmaster-${resourceToken}'
    location: location
    tags: tags
    azdServiceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    registries: registryId
    policyPath: policyPath
    verdictsTableName: storage.outputs.verdictsTableName
    runsQueueName: storage.outputs.runsQueueName
    eventsTopicEndpoint: events.outputs.customTopicEndpoint
    appResourceGroupName: rg.name
    cleanupEnabled: cleanupEnabled
    cleanupSchedule: cleanupSchedule
    cleanupDryRun: cleanupDryRun
    cleanupMaxDeletions: cleanupMaxDeletions
    cleanupLabTag: cleanupLabTag
    cleanupNamePatterns: cleanupNamePatterns
    cleanupProtectedGroups: cleanupProtectedGroups
    cleanupSubscriptions: cleanupSubscriptions
    cleanupTtlHours: cleanupTtlHours
    cleanupGraceHours: cleanupGraceHours
    cleanupWarningHours: cleanupWarningHours
    cleanupMaxExtensionHours: cleanupMaxExtensionHours
    cleanupExpiryTag: cleanupExpiryTag
    cleanupCreationTags: cleanupCreationTags
    cleanupProtectionTag: cleanupProtectionTag
    cleanupOwnerTag: cleanupOwnerTag
    cleanupLinkHours: cleanupLinkHours
    retentionEnabled: retentionEnabled
    retentionDryRun: retentionDryRun
    retentionSchedule: retentionSchedule
    retentionMaxDeletions: retentionMaxDeletions
    retentionMaxDeletionPercent: retentionMaxDeletionPercent
    retentionMinAgeHours: retentionMinAgeHours
    authEnabled: authEnabled
    authClientId: authClientId
    authAllowedAudiences: authAllowedAudiences
  }
  // The host must be able to reach its storage, telemetry and the deployment
  // package as soon as it starts.
  dependsOn: [
    storageAccess
    monitoringAccess
  ]
}

// ---------------------------------------------------------------- outputs
// azd stores these in .azure/<env>/.env; the postdeploy hook reads them.
// None of them is a secret.

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output EVENTGRID_DEADLETTER_CONTAINER string = storage.outputs.deadLetterContainerName
output EVENTGRID_SYSTEM_TOPIC_NAME string = events.outputs.systemTopicName
output EVENTGRID_RESOURCE_EVENTS_TOPIC_NAME string = events.outputs.resourceEventsTopicName
output DOCKMASTER_EVENTS_TOPIC_ENDPOINT string = events.outputs.customTopicEndpoint
output DOCKMASTER_REGISTRIES string = registryId
output DOCKMASTER_REGISTRY_LOGIN_SERVER string = registryAccess.outputs.loginServer
output DOCKMASTER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
