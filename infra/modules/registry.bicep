// A new Azure Container Registry, created only when no existing registry is
// given (main.bicep: existingRegistryResourceId). The admin user stays disabled:
// the app, ACR Tasks and people authenticate with Entra ID.
//
// API version 2025-11-01: the first GA version that has both properties set
// below (anonymousPullEnabled is GA from 2025-04-01, roleAssignmentMode from
// 2025-11-01; 2023-07-01 has neither). tests/infra checks every property
// against the Bicep types of the api-version.

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

@description('Create the registry in "RBAC Registry + ABAC Repository Permissions" mode, where the app gets the Container Registry Repository roles (registry-access.bicep) instead of AcrPull and AcrPush.')
param abacMode bool = false

resource registry 'Microsoft.ContainerRegistry/registries@2025-11-01' = {
  // checkov:skip=CKV_AZURE_139: Public network access stays on: disabling it needs Premium with private endpoints and a virtual network (not deployed here), and developers push and ACR Tasks run against the public endpoint. Admin user and anonymous pull are off, so every call needs an Entra ID token.
  // checkov:skip=CKV_AZURE_166: ACR's quarantine policy (preview) holds every pushed image until an external scanner marks it verified. Dockmaster is this deployment's gate instead: it verifies every pushed image against policy.yaml, locks a tag that passes and marks one that fails. It does not set ACR's quarantine state, so with the policy on, new images would stay quarantined.
  // checkov:skip=CKV_AZURE_163: The check passes on the SKU name (Standard or Premium) alone; no registry tier scans images by itself. Vulnerability assessment comes from Microsoft Defender for Containers, a paid subscription-wide plan that one app's template should not switch on.
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
    // Must match the roles registry-access.bicep grants: the legacy AcrPull and
    // AcrPush are not honoured in ABAC mode, the Repository roles are.
    roleAssignmentMode: abacMode ? 'AbacRepositoryPermissions' : 'LegacyRegistryPermissions'
    // zoneRedundancy is not set: it is the old Premium-only opt-in, fixed at
    // creation. Registries in regions with availability zones are now
    // zone-redundant by default in every tier, Basic included, at no cost.
  }
}

output id string = registry.id
output name string = registry.name
output loginServer string = registry.properties.loginServer
