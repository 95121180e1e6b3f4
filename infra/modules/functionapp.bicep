// The Function App on Flex Consumption (Linux, Python 3.11), running as the user-assigned
// identity. Flex Consumption takes the runtime from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME
// and FUNCTIONS_EXTENSION_VERSION are not app settings here; the package is read from a blob
// container with the same identity.
param name string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainer string
param maximumInstanceCount int
param instanceMemoryMB int
@description('App settings, exactly the ones the host and certrotate read (see infra/main.bicep).')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  #checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is offered in some regions only and is opt-in there; a missed event is caught by the next reconcile sweep and Event Grid retries deliveries for up to a day, so a zone outage delays rotations but loses none.
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  #checkov:skip=CKV_AZURE_17:Client certificates are irrelevant: the app has no HTTP triggers of its own; Event Grid calls the trigger through the Functions runtime with its system key.
  #checkov:skip=CKV_AZURE_222:Public network access stays on because Event Grid delivers to the function over its public endpoint (this template creates no VNet); the Event Grid webhook needs the system key, and there are no other HTTP triggers.
  #checkov:skip=CKV_AZURE_213:No HTTP endpoint to probe: the app has an Event Grid and a timer trigger only; failures surface as failed invocations and the alert rules (modules/alerts.bicep).
  #checkov:skip=CKV_AZURE_212:Flex Consumption scales out on demand (maximumInstanceCount); there is no fixed minimum instance count to set.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
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
        version: '3.11'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }

  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

output id string = site.id
output name string = site.name
output identityClientId string = identityClientId
