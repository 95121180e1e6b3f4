# azd postdeploy hook (Windows): see subscribe-events.sh.
$ErrorActionPreference = 'Stop'
$current = azd env get-value CERTROTATE_SUBSCRIBE_EVENTS 2>$null
if ($current -eq 'true') {
  Write-Host 'Event Grid subscriptions already enabled for this environment.'
  exit 0
}
azd env set CERTROTATE_SUBSCRIBE_EVENTS true
azd provision --no-prompt
