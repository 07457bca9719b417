// The Event Grid subscriptions that deliver the registry's image events to the
// on_image_event function, and the subscription's resource-group writes to
// on_resource_event (creation stamps). Deployed by azd's postdeploy hook (azure.yaml), not
// by main.bicep: Event Grid validates an AzureFunction destination when the
// subscription is created and fails ("Destination endpoint not found") until
// the code, and so the function, has been deployed.
//
//   az deployment group create --resource-group <AZURE_RESOURCE_GROUP> \
//     --template-file infra/subscription.bicep --parameters \
//     systemTopicName=<EVENTGRID_SYSTEM_TOPIC_NAME> \
//     resourceEventsTopicName=<EVENTGRID_RESOURCE_EVENTS_TOPIC_NAME> \
//     functionAppName=<AZURE_FUNCTION_APP_NAME> \
//     deadLetterStorageAccountName=<AZURE_STORAGE_ACCOUNT_NAME>

targetScope = 'resourceGroup'

@description('Name of the Event Grid system topic on the registry (main.bicep output EVENTGRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Name of the Event Grid system topic on the Azure subscription (main.bicep output EVENTGRID_RESOURCE_EVENTS_TOPIC_NAME).')
param resourceEventsTopicName string

@description('Name of the function that stamps new resource groups from their write events.')
param stampFunctionName string = 'on_resource_event'

@description('Name of the Function App (main.bicep output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('Name of the function that handles registry events.')
param functionName string = 'on_image_event'

@description('Storage account that receives dead-lettered events (main.bicep output AZURE_STORAGE_ACCOUNT_NAME).')
param deadLetterStorageAccountName string

@description('Blob container for dead-lettered events.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Delivery attempts before an event is dead-lettered (1-30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes an event is retried before it is dead-lettered (1-1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource resourceEventsTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: resourceEventsTopicName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource deadLetterStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: deadLetterStorageAccountName
}

resource imageEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'dockmaster-image-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${site.id}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.ContainerRegistry.ImagePushed'
        'Microsoft.ContainerRegistry.ImageDeleted'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    // Written with the system topic's own identity, which has Storage Blob Data
    // Contributor on this container only (modules/storage-access.bicep); the
    // account accepts no shared key.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

// Resource-group writes only (ARM raises a write event for every resource in
// the subscription): the event type, then the operation in the event's data.
// The stamp itself is a group write too; the function finds its tags and
// writes nothing, so it does not loop. Not dead-lettered: the topic has no
// identity to write with (see modules/events.bicep).
resource groupWrites 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: resourceEventsTopic
  name: 'dockmaster-group-writes'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${site.id}/functions/${stampFunctionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [
            'Microsoft.Resources/subscriptions/resourceGroups/write'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
  }
}

output eventSubscriptionId string = imageEvents.id
output groupWritesSubscriptionId string = groupWrites.id
