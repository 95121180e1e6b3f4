// One Key Vault (deployed into the vault's own resource group): certrotate's read access to its
// certificates and secrets, APIM's read access to its secrets, and the Event Grid system topic
// that delivers CertificateNewVersionCreated to the function (with retry and dead-lettering).
param vaultName string
param tags object
@description('Principal id of certrotate\'s user-assigned identity.')
param principalId string
@description('Resource id of that identity (the system topic dead-letters with it).')
param identityId string
param apimPrincipalIds array
param assignSecretsUser bool
param subscribeEvents bool
@description('Resource id of the function: {site id}/functions/on_key_vault_event.')
param functionResourceId string
param deadLetterStorageId string
param deadLetterContainer string
param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int
param actionGroupId string

var roles = {
  keyVaultCertificateUser: 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// certrotate lists certificate versions and reads their properties.
resource certificateUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultCertificateUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCertificateUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'certrotate: list certificate versions and read them'
  }
}

// certrotate reads the candidate's backing secret (PKCS#12/PEM with the private key) to validate it.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignSecretsUser) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'certrotate: read a candidate version\'s secret (certificate with private key) to validate it'
  }
}

// APIM's own identity resolves Key Vault-referenced certificate entities (keyVault.secretIdentifier).
resource apimSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for apimPrincipalId in apimPrincipalIds: {
  name: guid(vault.id, apimPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: apimPrincipalId
    principalType: 'ServicePrincipal'
    description: 'API Management: fetch Key Vault-referenced certificates'
  }
}]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-certrotate-${vaultName}'
  location: vault.location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeEvents) {
  parent: topic
  name: 'certrotate-new-version'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.CertificateNewVersionCreated'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

// Dead-lettered events: any in the last day means a re-drive is due (docs/deploy.md).
resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'certrotate-deadlettered-${vaultName}'
  location: 'global'
  tags: tags
  properties: {
    description: 'certrotate: events for ${vaultName} were dead-lettered; re-drive them (certrotate replay --to-topic).'
    severity: 2
    enabled: true
    scopes: [topic.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: empty(actionGroupId) ? [] : [{ actionGroupId: actionGroupId }]
  }
}

output vaultUri string = vault.properties.vaultUri
output systemTopicId string = topic.id
