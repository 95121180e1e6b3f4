// certrotate: everything `azd up` (or `az deployment group create`) provisions, in one resource
// group, plus role assignments and Event Grid topics scoped to the vaults' and APIM services'
// own resource groups. Nothing is assigned at subscription scope; no Owner/Contributor anywhere.
// Walkthrough, parameters and what each role is for: docs/deploy.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds the names of the resources.')
param environmentName string

@description('Region of the Function App and its storage (Flex Consumption must be offered there).')
param location string = resourceGroup().location

@minLength(1)
@description('Resource ids of the Key Vaults whose certificates certrotate rotates (any resource group or subscription). Each vault must use Azure RBAC authorization.')
param keyVaultResourceIds array

@minLength(1)
@description('Resource ids of the API Management services whose certificate entities and backends certrotate keeps current.')
param apimServiceResourceIds array

@description('Principal ids of the APIM services\' own managed identities. Each gets Key Vault Secrets User on every vault, which APIM needs to resolve Key Vault-referenced certificates. Leave empty when that is already granted.')
param apimPrincipalIds array = []

@description('Give each APIM service\'s certrotate role read/write on policies too (service, API and operation level). Needed with inboundCertificateUrls (inbound identities pinned in validate-client-certificate policies).')
param apimPolicyAccess bool = false

@description('ROTATION_INBOUND_CERTIFICATES: versionless Key Vault certificate URLs (https://{vault}/certificates/{name}) whose versions callers present; their thumbprints are kept current in validate-client-certificate policies (set apimPolicyAccess too).')
param inboundCertificateUrls array = []

@minValue(1)
@description('ROTATION_INBOUND_OVERLAP_DAYS: days an old inbound identity stays pinned next to its renewal.')
param inboundOverlapDays int = 7

@description('Also assign Key Vault Secrets User on each vault. Key Vault Certificate User already lets certrotate read a certificate\'s backing secret; keep this on if your vaults predate that role definition or you want the explicit grant.')
param assignSecretsUser bool = true

@description('Create the Event Grid subscriptions to the function. False on the first provision of `azd up` (the function must exist before Event Grid accepts it as an endpoint); the postdeploy hook sets it to true and provisions again.')
param subscribeEvents bool = false

@description('Path of the PEM bundle of trusted roots, relative to the app root (it must be in the deployed package).')
param trustAnchorsPath string = 'trust/roots.pem'

@allowed(['pin', 'blue-green'])
@description('ROTATION_STRATEGY.')
param strategy string = 'pin'

@description('ROTATION_DRY_RUN: plan and audit, change nothing.')
param dryRun bool = false

@allowed(['off', 'soft', 'hard'])
@description('ROTATION_REVOCATION.')
param revocation string = 'soft'

@minValue(0)
@description('ROTATION_MIN_VALID_DAYS: minimum remaining lifetime of a candidate.')
param minValidDays int = 14

@minValue(1)
@description('Days before expiry at which a binding is reported and alerted on (ROTATION_NEAR_EXPIRY_DAYS, and the expiry alert rule).')
param alertDays int = 30

@allowed([5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440])
@description('Minutes between reconcile sweeps (ROTATION_RECONCILE_SCHEDULE is derived from it; the staleness alert fires after twice this).')
param reconcilePeriodMinutes int = 30

@minValue(1)
@maxValue(30)
@description('Event Grid delivery attempts before an event is dead-lettered.')
param maxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
@description('Event Grid event time-to-live in minutes before an undelivered event is dead-lettered.')
param eventTimeToLiveInMinutes int = 1440

@minValue(1)
@description('Days the audit-anchors container keeps each blob write-once (time-based immutability policy, unlocked; lock it by hand when you are sure, see docs/deploy.md).')
param auditAnchorRetentionDays int = 365

@description('Resource id of an Azure Monitor action group the alert rules notify. Empty: the rules fire in the portal only.')
param actionGroupId string = ''

@description('Create the replay custom topic (re-drive of dead letters through Event Grid, `certrotate replay --to-topic`).')
param deployReplayTopic bool = false

@allowed(['EventGridSchema', 'CloudEventSchemaV1_0'])
@description('Input schema of the replay topic.')
param replayInputSchema string = 'EventGridSchema'

@description('Principal id (user, group or service principal) allowed to publish to the replay topic (EventGrid Data Sender). Empty: nobody until you assign it.')
param replayPublisherPrincipalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
@description('Type of replayPublisherPrincipalId.')
param replayPublisherPrincipalType string = 'User'

@minValue(40)
@maxValue(1000)
@description('Flex Consumption: maximum instances.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Flex Consumption: instance memory (MB).')
param instanceMemoryMB int = 2048

var tags = { 'azd-env-name': environmentName, application: 'certrotate' }
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var functionAppName = 'func-certrotate-${token}'
var containers = {
  deployment: 'app-package'
  locks: 'certrotate-locks'
  deadLetter: 'eventgrid-deadletter'
  auditAnchors: 'audit-anchors'
}
var auditTableName = 'certrotateaudit'
var functionName = 'on_key_vault_event'
var reconcileSchedule = (reconcilePeriodMinutes < 60) ? '0 */${reconcilePeriodMinutes} * * * *' : '0 0 */${reconcilePeriodMinutes / 60} * * *'
var vaultUrls = [for id in keyVaultResourceIds: 'https://${last(split(id, '/'))}${environment().suffixes.keyvaultDns}']

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-certrotate-${token}'
  location: location
  tags: tags
}

module storage 'modules/storage.bicep' = {
  name: 'certrotate-storage'
  params: {
    name: 'stcr${token}'
    location: location
    tags: tags
    principalId: identity.properties.principalId
    containers: containers
    auditTableName: auditTableName
    auditAnchorRetentionDays: auditAnchorRetentionDays
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'certrotate-monitoring'
  params: {
    token: token
    location: location
    tags: tags
    principalId: identity.properties.principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'certrotate-function'
  params: {
    name: functionAppName
    location: location
    tags: union(tags, { 'azd-service-name': 'certrotate' })
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainer: containers.deployment
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: {
      // Host storage: identity-based (shared keys are disabled on the account).
      AzureWebJobsStorage__accountName: storage.outputs.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      // Telemetry with Entra ID (local auth is disabled on App Insights).
      APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      // The identity DefaultAzureCredential uses for Key Vault and ARM.
      AZURE_CLIENT_ID: identity.properties.clientId
      // certrotate (README "Settings"): the lock and the audit table use AzureWebJobsStorage.
      ROTATION_VAULTS: join(vaultUrls, ',')
      ROTATION_APIM_SERVICES: join(apimServiceResourceIds, ',')
      ROTATION_TRUST_ANCHORS: trustAnchorsPath
      ROTATION_STRATEGY: strategy
      ROTATION_DRY_RUN: string(dryRun)
      ROTATION_REVOCATION: revocation
      ROTATION_MIN_VALID_DAYS: string(minValidDays)
      ROTATION_NEAR_EXPIRY_DAYS: string(alertDays)
      ROTATION_INBOUND_CERTIFICATES: join(inboundCertificateUrls, ',')
      ROTATION_INBOUND_OVERLAP_DAYS: string(inboundOverlapDays)
      ROTATION_RECONCILE_SCHEDULE: reconcileSchedule
      ROTATION_AUDIT_TABLE: auditTableName
      ROTATION_AUDIT_ANCHORS: containers.auditAnchors
      ROTATION_LOCK: 'blob'
      ROTATION_LOCK_CONTAINER: containers.locks
      ROTATION_ARM_ENDPOINT: environment().resourceManager
      ROTATION_LOG_LEVEL: 'INFO'
    }
  }
}

module vaults 'modules/vault.bicep' = [for (vaultId, i) in keyVaultResourceIds: {
  name: 'certrotate-vault-${i}-${uniqueString(vaultId)}'
  scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
  params: {
    vaultName: last(split(vaultId, '/'))
    tags: tags
    principalId: identity.properties.principalId
    identityId: identity.id
    apimPrincipalIds: apimPrincipalIds
    assignSecretsUser: assignSecretsUser
    subscribeEvents: subscribeEvents
    functionResourceId: '${functionApp.outputs.id}/functions/${functionName}'
    deadLetterStorageId: storage.outputs.id
    deadLetterContainer: containers.deadLetter
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    actionGroupId: actionGroupId
  }
}]

module apim 'modules/apim.bicep' = [for (serviceId, i) in apimServiceResourceIds: {
  name: 'certrotate-apim-${i}-${uniqueString(serviceId)}'
  scope: resourceGroup(split(serviceId, '/')[2], split(serviceId, '/')[4])
  params: {
    serviceName: last(split(serviceId, '/'))
    principalId: identity.properties.principalId
    policyAccess: apimPolicyAccess
  }
}]

module replay 'modules/replay.bicep' = if (deployReplayTopic) {
  name: 'certrotate-replay'
  params: {
    name: 'evgt-certrotate-replay-${token}'
    location: location
    tags: tags
    inputSchema: replayInputSchema
    identityId: identity.id
    publisherPrincipalId: replayPublisherPrincipalId
    publisherPrincipalType: replayPublisherPrincipalType
    subscribeEvents: subscribeEvents
    functionResourceId: '${functionApp.outputs.id}/functions/${functionName}'
    deadLetterStorageId: storage.outputs.id
    deadLetterContainer: containers.deadLetter
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    actionGroupId: actionGroupId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'certrotate-alerts'
  params: {
    token: token
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupId: actionGroupId
    alertDays: alertDays
    reconcilePeriodMinutes: reconcilePeriodMinutes
  }
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_CLIENT_ID string = identity.properties.clientId
output CERTROTATE_DEADLETTER_CONTAINER string = containers.deadLetter
output CERTROTATE_AUDIT_ANCHORS_CONTAINER string = containers.auditAnchors
output CERTROTATE_AUDIT_TABLE string = auditTableName
output CERTROTATE_APP_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output CERTROTATE_REPLAY_TOPIC_ENDPOINT string = deployReplayTopic ? replay.outputs.endpoint : ''
