// Event Grid: the system topic that carries the registry's events to the app,
// and the custom topic the app publishes its own events (verdicts, cleanup
// warnings and decisions) to.
//
// The system topic's event subscription (ImagePushed/ImageDeleted ->
// on_image_event) is not here: Event Grid refuses to create an AzureFunction
// subscription before the function exists, so infra/subscription.bicep creates
// it from azd's postdeploy hook, after the code is deployed.

@description('Name of the Event Grid system topic on the registry.')
param systemTopicName string

@description('Resource id of the registry the system topic listens to.')
param registryId string

@description('Region of the registry; a system topic must be in its source\'s region.')
param registryLocation string

@description('Name of the Event Grid system topic on the Azure subscription (its resource events).')
param resourceEventsTopicName string

@description('Name of the custom topic for Dockmaster\'s own events.')
param customTopicName string

@description('Azure region of the custom topic.')
param location string

@description('Tags for both topics.')
param tags object = {}

// The system-assigned identity is what Event Grid uses to write dead-lettered
// events to storage (deadLetterWithResourceIdentity); it gets Storage Blob Data
// Contributor on the dead-letter container only (storage-access.bicep).
resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: registryLocation
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: registryId
    topicType: 'Microsoft.ContainerRegistry.Registries'
  }
}

// The subscription's resource events (ARM writes and deletes of everything in
// it); the app's subscription (infra/subscription.bicep) takes resource-group
// writes only and stamps new groups with createdAt/createdBy. A system topic on
// an Azure subscription lives in a resource group, its location `global`. No
// identity: its events are not dead-lettered (a stamp that cannot be delivered
// within the retry window is skipped; cleanup then counts from first sight).
resource resourceEventsTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: resourceEventsTopicName
  location: 'global'
  tags: tags
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

// The custom topic's system-assigned identity costs nothing; it lets event
// subscriptions on Dockmaster's events deliver with the topic's identity
// (deliveryWithResourceIdentity) to Service Bus, Event Hubs or storage queues,
// instead of a key or SAS.
resource customTopic 'Microsoft.EventGrid/topics@2025-02-15' = {
  // checkov:skip=CKV_AZURE_193: The app publishes from Flex Consumption without virtual network integration, so the topic's public endpoint stays on; a private endpoint needs a VNet, private DNS and VNet integration (out of scope). Local (key) auth is off: only Entra ID tokens with EventGrid Data Sender (the app's identity) can publish.
  name: customTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

output systemTopicId string = systemTopic.id
output systemTopicName string = systemTopic.name
output systemTopicPrincipalId string = systemTopic.identity.principalId
output resourceEventsTopicName string = resourceEventsTopic.name
output customTopicId string = customTopic.id
output customTopicName string = customTopic.name
output customTopicEndpoint string = customTopic.properties.endpoint
output customTopicPrincipalId string = customTopic.identity.principalId
