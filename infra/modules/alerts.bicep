// Azure Monitor log alert rules over the audit records in Application Insights. Audit records
// are JSON log lines (logger rotation.audit, "audit": true, fields event/decision/certificate/
// vault/version/not_after/error/correlation_id, see docs/events.md), shipped as traces.
// Dead-lettered events are alerted on by metric alerts next to each Event Grid topic
// (modules/vault.bicep, modules/replay.bicep).
param token string
param location string
param tags object
param appInsightsId string
param actionGroupId string
@description('Alert when what a binding presents expires within this many days.')
param alertDays int
@description('Minutes between reconcile sweeps; the staleness rule fires after twice this.')
param reconcilePeriodMinutes int

// Audit records reach App Insights through the OpenTelemetry distro as traces whose message is
// the record's event name and whose custom dimensions are its fields (docs/operations.md).
var audit = 'traces | extend r = customDimensions | where tobool(r.audit) == true'

var rules = [
  {
    name: 'failed'
    displayName: 'certrotate: a rotation failed'
    description: 'An audit record with decision "failed" in the last hour: a transient or configuration error that Event Grid retries, then dead-letters. Follow its correlation_id.'
    severity: 1
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    muteActionsDuration: 'PT1H'
    query: '${audit} | where tostring(r.decision) == "failed" | project timestamp, event = tostring(r.event), certificate = tostring(r.certificate), vault = tostring(r.vault), error = tostring(r.error), correlation_id = tostring(r.correlation_id)'
  }
  {
    name: 'rejected'
    displayName: 'certrotate: a certificate version was rejected'
    description: 'An audit record with decision "rejected": a new version failed validation, so the bindings keep presenting the current certificate, which will expire. Read its findings.'
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    muteActionsDuration: 'PT15M'
    query: '${audit} | where tostring(r.decision) == "rejected" | project timestamp, certificate = tostring(r.certificate), vault = tostring(r.vault), version = tostring(r.version), findings = tostring(r.findings), correlation_id = tostring(r.correlation_id)'
  }
  {
    name: 'expiring'
    displayName: 'certrotate: a binding expires within ${alertDays} days'
    description: 'Reconcile reported that what a binding presents expires within ${alertDays} days (certificate.near_expiry / certificate.expired) and no newer valid version is bound.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    muteActionsDuration: 'P1D'
    query: '${audit} | where tostring(r.event) in ("certificate.near_expiry", "certificate.expired") | extend not_after = todatetime(r.not_after) | where not_after < now() + ${alertDays}d | summarize arg_max(timestamp, not_after) by certificate = tostring(r.certificate), vault = tostring(r.vault) | extend days_left = datetime_diff("day", not_after, now())'
  }
  {
    name: 'reconcile-stale'
    displayName: 'certrotate: reconcile has not completed for ${2 * reconcilePeriodMinutes} minutes'
    description: 'No "reconcile_finished" line for twice the reconcile period: the timer is not running or every sweep fails. Missed events and near expiry go unnoticed meanwhile.'
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'P2D'
    muteActionsDuration: 'PT1H'
    query: 'traces | where message has "reconcile_finished" | summarize last_run = max(timestamp) | where isnull(last_run) or last_run < ago(${2 * reconcilePeriodMinutes}m)'
  }
]

resource rule 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = [for rule in rules: {
  name: 'certrotate-${rule.name}-${token}'
  location: location
  tags: tags
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
    muteActionsDuration: rule.muteActionsDuration
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(actionGroupId) ? [] : [actionGroupId]
    }
  }
}]
