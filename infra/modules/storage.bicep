// The storage account: Functions host storage and deployment package, rotation lock blobs,
// Event Grid dead letters, the write-once audit anchors and the durable audit table.
// Shared-key access is disabled: everything authenticates with the managed identity.
param name string
param location string
param tags object
@description('Principal id of the user-assigned identity (function app, Event Grid dead-lettering).')
param principalId string
param containers object
param auditTableName string
param auditAnchorRetentionDays int

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration, and Event Grid dead-lettering, reach the account over its public endpoint; every request needs an Entra token (shared keys are disabled). Put the app in a VNet and deny public access if your policy requires it (docs/deploy.md).
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the public endpoint is the only path without VNet integration; shared keys are off, so it accepts Entra tokens only.
  #checkov:skip=CKV_AZURE_206:LRS is enough: the lock blobs and host state are disposable, dead letters are re-driven promptly, and the audit trail's copy of record is App Insights plus the table; choose ZRS/GRS in your own fork if you need it.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containers.deployment
  properties: { publicAccess: 'None' }
}

resource lockContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containers.locks
  properties: { publicAccess: 'None' }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containers.deadLetter
  properties: { publicAccess: 'None' }
}

resource auditAnchorContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containers.auditAnchors
  properties: { publicAccess: 'None' }
}

// Write-once anchors: a time-based retention policy on the container. Append writes stay allowed
// (one append blob per day); nothing written can be modified or deleted until it has aged out.
// The policy is created unlocked; lock it once tested (irreversible), see docs/deploy.md.
resource auditAnchorImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: auditAnchorContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditAnchorRetentionDays
    allowProtectedAppendWrites: true
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: auditTableName
}

// Blob: host storage (timer leases, deployment package), lock leases, dead letters (written by
// Event Grid with this identity), audit anchors. Table: the durable audit trail.
resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageBlobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'certrotate: host storage, lock leases, Event Grid dead letters, audit anchors'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roles.storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'certrotate: durable audit table'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
