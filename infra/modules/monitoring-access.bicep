// Monitoring Metrics Publisher on the Application Insights component only:
// with local auth disabled, this is what lets the app's identity send
// telemetry (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    description: 'Dockmaster: send telemetry with Entra ID'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}
