// One API Management service (deployed into the service's own resource group): a custom role
// limited to what certrotate does there, assigned at the service's scope only.
// Why not API Management Service Contributor: that role can also change APIs, products,
// subscriptions, named values and the service itself; certrotate needs none of that.
param serviceName string
@description('Principal id of certrotate\'s user-assigned identity.')
param principalId string
@description('Also grant policy read/write (service, API and operation level), for policies that pin certificate thumbprints inline.')
param policyAccess bool

var bindingActions = [
  'Microsoft.ApiManagement/service/read'
  'Microsoft.ApiManagement/service/certificates/read'
  'Microsoft.ApiManagement/service/certificates/write'
  'Microsoft.ApiManagement/service/certificates/delete'
  'Microsoft.ApiManagement/service/certificates/refreshSecret/action'
  'Microsoft.ApiManagement/service/backends/read'
  'Microsoft.ApiManagement/service/backends/write'
]
var policyActions = [
  'Microsoft.ApiManagement/service/policies/read'
  'Microsoft.ApiManagement/service/policies/write'
  'Microsoft.ApiManagement/service/apis/read'
  'Microsoft.ApiManagement/service/apis/policies/read'
  'Microsoft.ApiManagement/service/apis/policies/write'
  'Microsoft.ApiManagement/service/apis/operations/read'
  'Microsoft.ApiManagement/service/apis/operations/policies/read'
  'Microsoft.ApiManagement/service/apis/operations/policies/write'
]

resource service 'Microsoft.ApiManagement/service@2022-08-01' existing = {
  name: serviceName
}

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(service.id, 'certrotate-apim-binding-operator')
  properties: {
    roleName: 'certrotate APIM binding operator (${serviceName} ${uniqueString(service.id)})'
    description: 'certrotate: read the service, read/write/delete certificate entities and refresh their Key Vault secret, read/write backends${policyAccess ? ', read/write policies' : ''}.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: policyAccess ? concat(bindingActions, policyActions) : bindingActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(service.id, principalId, role.name)
  scope: service
  properties: {
    // Subscription-level id of the custom role (a role definition deployed at resource-group
    // scope still lives in the subscription's role catalogue).
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'certrotate: move APIM certificate entities and backends to validated Key Vault versions'
  }
}
