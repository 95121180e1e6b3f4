"""Event payload pieces shaped exactly like Event Grid's documented examples (both schemas, dead-letter)."""

from __future__ import annotations

from typing import Any

VERSION = "3f1c0d9e2b7a4c55a8e6d1b2c3f4a5b6"
TOPIC = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-rotation-demo"
    "/providers/Microsoft.KeyVault/vaults/kv-rotation-demo"
)
DATA: dict[str, Any] = {
    "Id": f"https://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{VERSION}",
    "VaultName": "kv-rotation-demo",
    "ObjectType": "Certificate",
    "ObjectName": "partner-mtls",
    "Version": VERSION,
    "NBF": 1772438400,
    "EXP": 1804060800,
}
