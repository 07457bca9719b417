// The storage account behind the app: the Functions host's own storage
// (AzureWebJobsStorage, by identity), the Flex Consumption deployment package,
// the verdict table, the verification queues and the Event Grid dead-letter
// container. Shared keys are disabled, so every client (host, app, Event Grid)
// authenticates with Entra ID.

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the account.')
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Blob container where Event Grid dead-letters undeliverable events.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Replication of the account. Standard_LRS keeps three copies in one datacenter. Standard_ZRS spreads them over three availability zones, so host storage, verdicts, queues and the deployment package survive a zone outage; only in regions with availability zones.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param sku string = 'Standard_LRS'

@description('Table the app keeps verdicts in (DOCKMASTER_VERDICTS_TABLE).')
param verdictsTableName string = 'verdicts'

@description('Queue that follows ACR Task runs (DOCKMASTER_RUNS_QUEUE).')
param runsQueueName string = 'verification-runs'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The Flex Consumption app (no VNet integration in this deployment) and Event Grid dead-lettering reach the account over its public endpoint; every request needs an Entra ID token because shared keys are disabled.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35; public network access is on, anonymous blob access and shared keys are off.
  // checkov:skip=CKV_AZURE_206: The check wants geo-replication (GRS/GZRS). It would not keep Dockmaster running through a regional outage: the app, plan, registry and Event Grid are single-region and storage failover is manual; the data here (host leases, queues, verdicts that re-verification rebuilds) is regional working state. Zone resilience is the sku parameter's Standard_ZRS.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource runsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: runsQueueName
}

// The Functions host moves a message here after maxDequeueCount failures; it
// is created up front so that it exists (and can be watched) before the first one.
resource runsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${runsQueueName}-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource verdictsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: verdictsTableName
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output deadLetterContainerName string = deadLetterContainer.name
output verdictsTableName string = verdictsTable.name
output runsQueueName string = runsQueue.name
