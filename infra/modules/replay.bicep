// Optional: a custom Event Grid topic for re-driving dead-lettered events through Event Grid
// (`certrotate replay --to-topic`). Publishing is by role only (local auth disabled). Its
// subscription targets the same function with the same filter, retry and dead-letter settings
// as the vaults' system topics, so a re-driven event is handled exactly like the original.
param name string
param location string
param tags object
param inputSchema string
@description('Resource id of certrotate\'s user-assigned identity (dead-lettering).')
param identityId string
param publisherPrincipalId string
param publisherPrincipalType string
param subscribeEvents bool
param functionResourceId string
param deadLetterStorageId string
param deadLetterContainer string
param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int
param actionGroupId string

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  #checkov:skip=CKV_AZURE_193:The operator publishes from outside Azure (their workstation or a pipeline) and there is no VNet in this template; local auth is disabled, so only principals holding EventGrid Data Sender can publish.
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    inputSchema: inputSchema
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// Whoever re-drives dead letters (an operator or a pipeline) may publish here, nowhere else.
resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(publisherPrincipalId)) {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: publisherPrincipalId
    principalType: publisherPrincipalType
    description: 'certrotate: re-drive dead-lettered events (certrotate replay --to-topic)'
  }
}

resource subscription 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (subscribeEvents) {
  parent: topic
  name: 'certrotate-replay'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: inputSchema == 'CloudEventSchemaV1_0' ? 'CloudEventSchemaV1_0' : 'EventGridSchema'
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

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'certrotate-deadlettered-replay'
  location: 'global'
  tags: tags
  properties: {
    description: 'certrotate: re-driven events were dead-lettered again; look at the function\'s failures before re-driving once more.'
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
          metricNamespace: 'Microsoft.EventGrid/topics'
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

output endpoint string = topic.properties.endpoint
output id string = topic.id
