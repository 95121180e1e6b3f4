#!/bin/sh
# azd postdeploy hook: once the function exists, create the Event Grid subscriptions to it
# (subscribeEvents=true) by provisioning again. Runs once per azd environment.
set -eu
if [ "$(azd env get-value CERTROTATE_SUBSCRIBE_EVENTS 2>/dev/null || true)" = "true" ]; then
  echo "Event Grid subscriptions already enabled for this environment."
  exit 0
fi
azd env set CERTROTATE_SUBSCRIBE_EVENTS true
azd provision --no-prompt
