// EventGrid Data Sender on Dockmaster's custom topic only: the app publishes
// verdicts and cleanup notices there with its identity (local auth is off).

@description('Name of the custom Event Grid topic.')
param customTopicName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource customTopic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: customTopicName
}

resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(customTopic.id, principalId, eventGridDataSender)
  scope: customTopic
  properties: {
    description: 'Dockmaster: publish verdict and cleanup events'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
  }
}
