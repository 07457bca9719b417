// Data-plane rights on the storage account. Shared keys are disabled, so these
// role assignments are the only way in.
//
// App identity, on the account (the Functions host creates its own containers
// and queues, so these cannot be narrowed to one container/queue):
// - Storage Blob Data Owner: host storage (keys, leases, timers) and reading
//   the deployment package; Owner rather than Contributor because the host
//   manages container-level state, as the Functions identity guidance requires.
// - Storage Queue Data Contributor: queue trigger and the verification-runs
//   queue (send, peek, delete, poison queue).
// - Storage Table Data Contributor: the verdicts table.
// Event Grid system topic identity, on the dead-letter container only:
// - Storage Blob Data Contributor: write dead-lettered events.
// Optional developer (AZURE_PRINCIPAL_ID), on the account:
// - Storage Table Data Reader: read verdicts while debugging; nothing else.

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the dead-letter blob container.')
param deadLetterContainerName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Principal (object) id of the Event Grid system topic\'s identity.')
param systemTopicPrincipalId string

@description('Principal (object) id of the developer running azd; empty for none.')
param developerPrincipalId string = ''

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource deadLetterContainer 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    description: 'Dockmaster: Functions host storage and deployment package'
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
  }
}

resource appQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    description: 'Dockmaster: queue trigger and verification-runs queue'
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
  }
}

resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    description: 'Dockmaster: verdicts table'
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
  }
}

resource deadLetterBlobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobService::deadLetterContainer.id, systemTopicPrincipalId, roleIds.storageBlobDataContributor)
  scope: storage::blobService::deadLetterContainer
  properties: {
    description: 'Dockmaster: Event Grid dead-lettering of registry events'
    principalId: systemTopicPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataContributor)
  }
}

resource developerTableDataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(storage.id, developerPrincipalId, roleIds.storageTableDataReader)
  scope: storage
  properties: {
    description: 'Dockmaster: developer reads verdicts'
    principalId: developerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataReader)
  }
}
