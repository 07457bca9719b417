// The Flex Consumption plan and the Linux Function App that runs
// function_app.py (Python 3.11), with the app settings the code reads.
//
// Identity: one user-assigned identity for everything — the host's storage
// (AzureWebJobsStorage__*), the deployment package, Application Insights
// ingestion and the app's own SDK clients (AZURE_CLIENT_ID for
// DefaultAzureCredential). No key, connection string with a key, or publishing
// credential is created or stored.

@description('Name of the Function App.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags for the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('azd service name this app hosts (azure.yaml services key).')
param azdServiceName string = 'api'

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('Blob endpoint of the storage account, with a trailing slash.')
param storageBlobEndpoint string

@description('Queue endpoint of the storage account, with a trailing slash.')
param storageQueueEndpoint string

@description('Table endpoint of the storage account, with a trailing slash.')
param storageTableEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (no secret: local auth is disabled).')
param applicationInsightsConnectionString string

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Upper bound on Flex Consumption instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---- settings the application reads (see local.settings.sample.json) ----

@description('DOCKMASTER_REGISTRIES: the registry resource id(s) the app verifies.')
param registries string

@description('DOCKMASTER_POLICY_PATH: the verification policy file, relative to the app.')
param policyPath string

@description('DOCKMASTER_VERDICTS_TABLE')
param verdictsTableName string

@description('DOCKMASTER_RUNS_QUEUE')
param runsQueueName string

@description('DOCKMASTER_EVENTS_TOPIC_ENDPOINT: endpoint of the custom topic.')
param eventsTopicEndpoint string

@description('DOCKMASTER_APP_RESOURCE_GROUP: the app\'s own group, never cleaned up.')
param appResourceGroupName string

@description('CLEANUP_ENABLED')
param cleanupEnabled bool

@description('CLEANUP_SCHEDULE (NCRONTAB, six fields)')
param cleanupSchedule string

@description('CLEANUP_DRY_RUN')
param cleanupDryRun bool

@description('CLEANUP_MAX_DELETIONS')
param cleanupMaxDeletions int

@description('CLEANUP_LAB_TAG (name=value)')
param cleanupLabTag string

@description('CLEANUP_NAME_PATTERNS (comma-separated globs)')
param cleanupNamePatterns string

@description('CLEANUP_PROTECTED_GROUPS (comma-separated names)')
param cleanupProtectedGroups string

@description('CLEANUP_SUBSCRIPTIONS (comma-separated ids; empty = this subscription)')
param cleanupSubscriptions string

@description('CLEANUP_TTL_HOURS')
param cleanupTtlHours int

@description('CLEANUP_GRACE_HOURS')
param cleanupGraceHours int

@description('CLEANUP_WARNING_HOURS')
param cleanupWarningHours int

@description('CLEANUP_MAX_EXTENSION_HOURS: how far from now an extended lab may expire')
param cleanupMaxExtensionHours int

@description('CLEANUP_EXPIRY_TAG: tag holding a lab\'s expiry (ISO 8601, or 72h/3d/90m)')
param cleanupExpiryTag string

@description('CLEANUP_CREATION_TAGS (comma-separated tag names holding a creation time)')
param cleanupCreationTags string

@description('CLEANUP_PROTECTION_TAG (comma-separated tag names that protect a group, any value)')
param cleanupProtectionTag string

@description('CLEANUP_OWNER_TAG: the tag naming a lab\'s owner in its warning (else its createdBy tag)')
param cleanupOwnerTag string

@description('CLEANUP_LINK_HOURS: the hours a warning\'s extend link adds')
param cleanupLinkHours int

@description('RETENTION_ENABLED')
param retentionEnabled bool

@description('RETENTION_DRY_RUN')
param retentionDryRun bool

@description('RETENTION_SCHEDULE (NCRONTAB, six fields)')
param retentionSchedule string

@description('RETENTION_MAX_DELETIONS (per repository and run)')
param retentionMaxDeletions int

@description('RETENTION_MAX_DELETION_PERCENT (of a repository\'s manifests, per run)')
param retentionMaxDeletionPercent int

@description('RETENTION_MIN_AGE_HOURS (no younger image is touched)')
param retentionMinAgeHours int

// ---- optional App Service authentication (Entra ID) in front of the API ----

@description('Require an Entra ID token on every request to the app (except the Event Grid webhook).')
param authEnabled bool = false

@description('Application (client) id of the Entra app registration that represents the API.')
param authClientId string = ''

@description('Accepted token audiences; defaults to api://<authClientId> and the client id.')
param authAllowedAudiences array = []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: A zone-redundant Flex Consumption plan keeps at least two always-ready instances per function group, billed around the clock, and exists in only some regions. Dockmaster scales from zero; its work is retried (Event Grid up to 24 h, queue retries), so a zone outage delays verification without losing it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Callers authenticate with function keys (and optionally Entra ID); Event Grid's AzureFunction delivery cannot present a client certificate.
  // checkov:skip=CKV_AZURE_222: Event Grid delivers registry events to the app over its public endpoint (it cannot reach a private endpoint), and the API is called from outside; private access needs VNet integration and private endpoints (out of scope). HTTPS only, TLS 1.2, function keys, optional Entra ID.
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no instance count on the site (siteConfig.numberOfWorkers belongs to Dedicated and Premium plans); it scales each function from zero. The only floor is always-ready instances, billed while idle, which an event-driven, retried workload does not need.
  // checkov:skip=CKV_AZURE_213: Health check (siteConfig.healthCheckPath) is not an option for Flex Consumption apps, only for Premium and Dedicated plans (Azure Functions monitoring docs). The anonymous GET /api/health is there for external probes and availability tests.
  // checkov:skip=CKV_AZURE_78: The check reads siteConfig.ftpsState, which a Flex Consumption site refuses (ARM error 51021, "... for Flex Consumption sites is invalid"; Flex Consumption plan deprecations: "FTPS not supported"). FTP is off all the same: the ftp basicPublishingCredentialsPolicies below is allow: false, and so is scm.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Flex Consumption refuses many siteConfig properties of the other plans
    // (ftpsState among them: ARM error 51021 "... for Flex Consumption sites is
    // invalid"); tests/infra/deployment_rules.py lists them with their sources.
    // FTP is off through the ftp publishing policy below instead.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Every setting the code reads, except the local-only ones: AzureWebJobsStorage
// (replaced by the identity-based AzureWebJobsStorage__* below) and
// FUNCTIONS_WORKER_RUNTIME (Flex Consumption takes the runtime from
// functionAppConfig.runtime and rejects it as an app setting).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: False positive: this is the 'appsettings' config resource, not site authentication; authentication is the optional authsettingsV2 resource below.
  // checkov:skip=CKV_AZURE_63: False positive: the check targets the 'web' site config; 'appsettings' config has no logging properties. Logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65: False positive: the check targets the 'web' site config; 'appsettings' config has no error-page properties.
  // checkov:skip=CKV_AZURE_66: False positive: the check targets the 'web' site config; 'appsettings' config has no request-tracing properties.
  // checkov:skip=CKV_AZURE_80: Not applicable: a Python app with no .NET Framework; 'appsettings' config has no netFrameworkVersion.
  // checkov:skip=CKV_AZURE_88: Not applicable: Flex Consumption has no Azure Files content share; the code comes from a blob container.
  // checkov:skip=CKV_AZURE_222: False positive: publicNetworkAccess is a property of the site (see above), not of its 'appsettings' config.
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage, by identity. The service URIs come from the
    // account itself, so sovereign clouds work without a suffix table. No
    // __accountName: the host would read it before the URIs and derive
    // core.windows.net endpoints from it (StorageClientProvider), wrong outside
    // public Azure; the app refuses the combination (shared/clients.py).
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
    AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId

    // Telemetry, by identity (local auth is disabled on the component).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

    // Cloud and identity: the same names the devstack points elsewhere.
    AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
    AZURE_TENANT_ID: tenant().tenantId
    AZURE_CLIENT_ID: identityClientId
    AZURE_RESOURCE_MANAGER_ENDPOINT: environment().resourceManager
    AZURE_AUTHORITY_HOST: environment().authentication.loginEndpoint

    DOCKMASTER_REGISTRIES: registries
    DOCKMASTER_POLICY_PATH: policyPath
    DOCKMASTER_VERDICTS_TABLE: verdictsTableName
    DOCKMASTER_RUNS_QUEUE: runsQueueName
    DOCKMASTER_EVENTS_TOPIC_ENDPOINT: eventsTopicEndpoint
    DOCKMASTER_APP_RESOURCE_GROUP: appResourceGroupName
    // App roles are read from X-MS-CLIENT-PRINCIPAL, which only App Service authentication can vouch for.
    DOCKMASTER_API_ROLES: authEnabled ? 'true' : 'false'
    // Empty: a build's sourceUrl may name any host whose addresses are all public (none internal).
    DOCKMASTER_BUILD_SOURCE_HOSTS: ''
    // Each final verdict is pushed beside its image as an OCI referrer (AcrPush / Repository Writer).
    DOCKMASTER_ATTACH_VERDICTS: 'true'
    // The base of the links in lab warnings; never taken from a request's Host header.
    DOCKMASTER_PUBLIC_URL: 'https://${site.properties.defaultHostName}'

    CLEANUP_ENABLED: cleanupEnabled ? 'true' : 'false'
    CLEANUP_SCHEDULE: cleanupSchedule
    CLEANUP_DRY_RUN: cleanupDryRun ? 'true' : 'false'
    CLEANUP_MAX_DELETIONS: string(cleanupMaxDeletions)
    CLEANUP_LAB_TAG: cleanupLabTag
    CLEANUP_NAME_PATTERNS: cleanupNamePatterns
    CLEANUP_PROTECTED_GROUPS: cleanupProtectedGroups
    CLEANUP_SUBSCRIPTIONS: cleanupSubscriptions
    CLEANUP_TTL_HOURS: string(cleanupTtlHours)
    CLEANUP_GRACE_HOURS: string(cleanupGraceHours)
    CLEANUP_WARNING_HOURS: string(cleanupWarningHours)
    CLEANUP_MAX_EXTENSION_HOURS: string(cleanupMaxExtensionHours)
    CLEANUP_EXPIRY_TAG: cleanupExpiryTag
    CLEANUP_CREATION_TAGS: cleanupCreationTags
    CLEANUP_PROTECTION_TAG: cleanupProtectionTag
    CLEANUP_OWNER_TAG: cleanupOwnerTag
    CLEANUP_LINK_HOURS: string(cleanupLinkHours)
    // CLEANUP_TEAMS_WEBHOOK_URL, CLEANUP_SLACK_WEBHOOK_URL and CLEANUP_LINK_KEY are secrets: not set here
    // (infra/ has no Key Vault); add them as Key Vault references after deployment (README, Lab cleanup).
    RETENTION_ENABLED: retentionEnabled ? 'true' : 'false'
    RETENTION_DRY_RUN: retentionDryRun ? 'true' : 'false'
    RETENTION_SCHEDULE: retentionSchedule
    RETENTION_MAX_DELETIONS: string(retentionMaxDeletions)
    RETENTION_MAX_DELETION_PERCENT: string(retentionMaxDeletionPercent)
    RETENTION_MIN_AGE_HOURS: string(retentionMinAgeHours)
  }
}

// No FTP and no basic-auth (publishing profile) deployments: azd deploys with
// the signed-in user's Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// Optional Entra ID sign-in in front of the whole app. The Event Grid webhook
// stays reachable without a token (Event Grid cannot present one to a
// system-topic AzureFunction endpoint); it is still protected by the
// eventgrid_extension system key Event Grid uses.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (authEnabled) {
  // checkov:skip=CKV_AZURE_13: False positive: the check reads the legacy authsettings schema (properties.enabled); authsettingsV2 enables authentication with platform.enabled, set below.
  // checkov:skip=CKV_AZURE_63: False positive: the check targets the 'web' site config; authsettingsV2 has no logging properties. Logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65: False positive: the check targets the 'web' site config; authsettingsV2 has no error-page properties.
  // checkov:skip=CKV_AZURE_66: False positive: the check targets the 'web' site config; authsettingsV2 has no request-tracing properties.
  // checkov:skip=CKV_AZURE_80: Not applicable: a Python app with no .NET Framework; authsettingsV2 has no netFrameworkVersion.
  // checkov:skip=CKV_AZURE_88: Not applicable: Flex Consumption has no Azure Files content share; the code comes from a blob container.
  // checkov:skip=CKV_AZURE_222: False positive: publicNetworkAccess is a property of the site (see above), not of its authsettingsV2 config.
  // checkov:skip=CKV_AZURE_70: Checkov cannot evaluate this check on a conditional (if) resource: it reads the condition wrapper, finds no properties and raises KeyError 'properties' (the ERROR traceback Checkov 3.3.30 logs; it runs every check before applying skips). HTTPS is enforced: httpSettings.requireHttps below, httpsOnly on the site.
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/runtime/webhooks/eventgrid'
        '/api/health'
        // A lab warning's extend link: opened from Teams or Slack; its HMAC is the authority.
        '/api/cleanup/extend-link'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: empty(authAllowedAudiences) ? [
            'api://${authClientId}'
            authClientId
          ] : authAllowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output uri string = 'https://${site.properties.defaultHostName}'
