// The app identity's rights on the registry, deployed in the registry's own
// resource group (which is the app's group for a new registry, or wherever an
// existing registry lives). Every assignment is scoped to the registry itself,
// never to its resource group or subscription.
//
// Data plane, two modes:
// - RBAC-only registries (the mode of every registry this template creates, and
//   the default of existing ones): AcrPull to read manifests, configs and tags,
//   and AcrPush to write repository metadata (lock a tag on pass, mark it on
//   fail). AcrPush is the narrowest built-in role honoured in this mode that
//   carries metadata write: AcrImageSigner is deprecated and only signs, and
//   the ABAC "Container Registry Repository *" roles are meant for ABAC mode.
// - ABAC-enabled registries (registryAbacMode = true): AcrPull and AcrPush are
//   not honoured there, so the app gets Container Registry Repository Writer
//   (content and metadata read/write, which includes what Repository Reader
//   grants) and Container Registry Repository Catalog Lister (list
//   repositories). Either can later be narrowed to repositories with an ABAC
//   condition.
//   In ABAC mode, ACR Task runs and builds also lose their default data-plane
//   access to the registry: the app schedules them with the caller's identity
//   (`[caller]` as the source registry identity), so they pull and push with
//   these same rights and need no role of their own.
// Deletes (image retention, only when it is turned on): AcrDelete in RBAC-only mode (the push roles carry
// no delete); Container Registry Repository Contributor in ABAC mode (read, write and delete).
// Control plane: Container Registry Tasks Contributor, to schedule and follow
// ACR Task runs (smoke runs, builds) and read their logs.

@description('Name of the registry (in this deployment\'s resource group).')
param registryName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('True when the registry uses the "RBAC Registry + ABAC Repository Permissions" mode.')
param registryAbacMode bool = false

@description('True when image retention is turned on: the app may then delete images.')
param retentionEnabled bool = false

var roleIds = {
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  acrPush: '8311e382-0749-4cb8-b61a-304f252e45ec'
  repositoryWriter: '2a1e307c-b015-4ebd-883e-5b7698a07328'
  repositoryCatalogLister: 'bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7'
  tasksContributor: 'fb382eab-e894-4461-af04-94435c366c3f'
  acrDelete: 'c2f4ef07-c644-48eb-af81-4b1b4947fb11'
  repositoryContributor: '2efddaa5-3f1f-4df3-97df-af3f13818f4c'
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' existing = {
  name: registryName
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.acrPull)
  scope: registry
  properties: {
    description: 'Dockmaster: read manifests, configs and tags'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrPull)
  }
}

resource acrPush 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.acrPush)
  scope: registry
  properties: {
    description: 'Dockmaster: write repository metadata (lock or mark tags after verification)'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrPush)
  }
}

resource repositoryWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.repositoryWriter)
  scope: registry
  properties: {
    description: 'Dockmaster: read content and metadata, write metadata (ABAC-enabled registry)'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.repositoryWriter)
  }
}

resource repositoryCatalogLister 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.repositoryCatalogLister)
  scope: registry
  properties: {
    description: 'Dockmaster: list repositories (ABAC-enabled registry)'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.repositoryCatalogLister)
  }
}

resource acrDelete 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (retentionEnabled && !registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.acrDelete)
  scope: registry
  properties: {
    description: 'Dockmaster: delete images that the retention rules expire'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrDelete)
  }
}

resource repositoryContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (retentionEnabled && registryAbacMode) {
  name: guid(registry.id, principalId, roleIds.repositoryContributor)
  scope: registry
  properties: {
    description: 'Dockmaster: delete images that the retention rules expire (ABAC-enabled registry)'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.repositoryContributor)
  }
}

resource tasksContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, roleIds.tasksContributor)
  scope: registry
  properties: {
    description: 'Dockmaster: schedule, follow and read logs of ACR Task runs'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.tasksContributor)
  }
}

// The system topic on the registry has to be in the registry's region.
output location string = registry.location
output loginServer string = registry.properties.loginServer
