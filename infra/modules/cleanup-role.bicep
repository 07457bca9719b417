// Lab cleanup rights: a custom role at subscription scope, defined and assigned
// to the app's identity only when cleanupEnabled is true. No built-in role
// deletes resource groups without also granting write on everything
// (Contributor), so the role lists exactly what the cleanup timer does:
//   resourceGroups/read    list groups (server-side tag filter) and read tags
//   resourceGroups/write   stamp tags (first-seen, warning) on a group
//   resourceGroups/delete  delete an expired lab group
//   locks/read             skip groups that carry a management lock (the subscription's
//                          lock listing: on groups, on what they hold, on the subscription)
// plus resourceDeleteActions: Azure Resource Manager also checks delete
// permission on every resource inside a group before deleting the group, so a
// group that is not empty cannot be deleted without it. The default '*/delete'
// lets the app delete what a lab group holds; narrow it to the resource types
// your labs use (for example 'Microsoft.ContainerRegistry/registries/delete',
// 'Microsoft.Web/*/delete'). It grants no write or read on those resources.
//
// At subscription scope '*/delete' also matches Microsoft.Authorization/*/delete:
// management locks (the very thing cleanup honours), role assignments and
// policy assignments. notActions withholds what the built-in Contributor role
// withholds (its notActions, verbatim), so no value of resourceDeleteActions can
// reach them; it is a fixed list, not a parameter.

targetScope = 'subscription'

@description('Create the role and assign it to the app identity.')
param cleanupEnabled bool = false

@description('azd environment name; makes the role name unique per environment.')
param environmentName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

@description('Delete actions on the resources inside lab groups (see the header). Narrow it to the types your labs hold, for example [\'Microsoft.Web/*/delete\', \'Microsoft.Storage/*/delete\'].')
param resourceDeleteActions array = [
  '*/delete'
]

var groupActions = [
  'Microsoft.Resources/subscriptions/resourceGroups/read'
  'Microsoft.Resources/subscriptions/resourceGroups/write'
  'Microsoft.Resources/subscriptions/resourceGroups/delete'
  'Microsoft.Authorization/locks/read'
]

// The built-in Contributor's notActions (role b24988ac-6180-42a0-ab88-20f7382dd24c,
// docs "Azure built-in roles for Privileged"): locks, role and policy assignments,
// elevated access and the other operations Contributor may not perform.
var contributorNotActions = [
  'Microsoft.Authorization/*/Delete'
  'Microsoft.Authorization/*/Write'
  'Microsoft.Authorization/elevateAccess/Action'
  'Microsoft.Blueprint/blueprintAssignments/write'
  'Microsoft.Blueprint/blueprintAssignments/delete'
  'Microsoft.Compute/galleries/share/action'
  'Microsoft.Purview/consents/write'
  'Microsoft.Purview/consents/delete'
  'Microsoft.Resources/deploymentStacks/manageDenySetting/action'
  'Microsoft.Subscription/cancel/action'
  'Microsoft.Subscription/enable/action'
]

resource cleanupRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (cleanupEnabled) {
  name: guid(subscription().id, 'dockmaster-lab-cleanup', environmentName)
  properties: {
    roleName: 'Dockmaster lab cleanup (${environmentName}, ${uniqueString(subscription().id, environmentName)})'
    description: 'Find, tag and delete expired lab resource groups; read locks. Used by Dockmaster\'s cleanup timer.'
    type: 'CustomRole'
    permissions: [
      {
        actions: union(groupActions, resourceDeleteActions)
        notActions: contributorNotActions
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource cleanupAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (cleanupEnabled) {
  name: guid(subscription().id, principalId, cleanupRole.id)
  properties: {
    description: 'Dockmaster: lab resource group cleanup'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: cleanupRole.id
  }
}

output roleDefinitionId string = cleanupEnabled ? cleanupRole.id : ''
