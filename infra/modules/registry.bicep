// A new Azure Container Registry, created only when no existing registry is
// given (main.bicep: existingRegistryResourceId). The admin user stays disabled:
// the app, ACR Tasks and people authenticate with Entra ID.

@description('Registry name (5-50 letters and digits, globally unique).')
@minLength(5)
@maxLength(50)
param name string

@description('Azure region.')
param location string

@description('Tags for the registry.')
param tags object = {}

@description('Registry SKU. Basic is enough for Dockmaster; Premium adds private endpoints, geo-replication and retention policies.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'Basic'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
    networkRuleBypassOptions: 'AzureServices'
    zoneRedundancy: 'Disabled'
  }
}

output id string = registry.id
output name string = registry.name
output loginServer string = registry.properties.loginServer
