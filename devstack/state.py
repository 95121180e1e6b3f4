"""The stand-ins' state: Key Vault certificate versions and APIM entities, persisted as JSON.

One ``DevstackState`` holds both stores behind one re-entrant lock; lookups are dict accesses
(O(1) per entity), so seeding thousands of backends stays fast. ``save()`` writes
``state.json`` atomically when a state directory is set; ephemeral stacks never touch disk.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from devstack.bundles import ParsedBundle, secret_value, subject_string, thumbprint_hex, x5t

__all__ = ["ApimService", "DevstackState", "Entity", "KeyVaultStore", "KvVersion"]


@dataclass(slots=True, kw_only=True)
class KvVersion:
    """One Key Vault certificate version, with everything its bundle and secret need."""

    name: str
    version: str
    created: int
    updated: int
    enabled: bool
    tags: dict[str, str]
    content_type: str
    secret_value: str = field(repr=False)
    cer: str
    x5t: str
    thumbprint: str
    subject: str
    nbf: int
    exp: int


class KeyVaultStore:
    """Certificates by (case-insensitive) name, each a dict of versions in creation order."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.certificates: dict[str, dict[str, KvVersion]] = {}
        self.policies: dict[str, str] = {}  # name -> secret content type

    def add_version(
        self,
        name: str,
        bundle: ParsedBundle,
        *,
        content_type: str,
        enabled: bool = True,
        tags: dict[str, str] | None = None,
    ) -> KvVersion:
        """Store a new version of ``name`` (32-hex id, ``created`` strictly increasing)."""
        versions = self.certificates.setdefault(name.lower(), {})
        last = max((v.created for v in versions.values()), default=0)
        created = max(int(self._clock()), last + 1)
        leaf = bundle.leaf
        entry = KvVersion(
            name=name,
            version=uuid.uuid4().hex,
            created=created,
            updated=created,
            enabled=enabled,
            tags=dict(tags or {}),
            content_type=content_type,
            secret_value=secret_value(bundle, content_type),
            cer=base64.b64encode(leaf.public_bytes(Encoding.DER)).decode(),
            x5t=x5t(leaf),
            thumbprint=thumbprint_hex(leaf),
            subject=subject_string(leaf),
            nbf=int(leaf.not_valid_before_utc.timestamp()),
            exp=int(leaf.not_valid_after_utc.timestamp()),
        )
        versions[entry.version] = entry
        self.policies[name.lower()] = content_type
        return entry

    def versions(self, name: str) -> list[KvVersion]:
        """Every version of ``name`` in creation order (empty if unknown)."""
        return list(self.certificates.get(name.lower(), {}).values())

    def get(self, name: str, version: str | None = None) -> KvVersion | None:
        """A version, or the latest (by ``created``) when ``version`` is empty."""
        versions = self.certificates.get(name.lower())
        if not versions:
            return None
        if version:
            return versions.get(version.lower())
        return max(versions.values(), key=lambda v: v.created)

    def newest_enabled(self, name: str) -> KvVersion | None:
        """The newest enabled version (what a versionless secret identifier resolves to)."""
        enabled = [v for v in self.versions(name) if v.enabled]
        return max(enabled, key=lambda v: v.created) if enabled else None

    def touch(self, entry: KvVersion) -> None:
        """Mark ``entry`` updated now."""
        entry.updated = max(int(self._clock()), entry.created)


@dataclass(slots=True)
class Entity:
    """An APIM entity: its (original-case) name, ARM ``properties`` and current ETag."""

    name: str
    properties: dict[str, Any]
    etag: str


@dataclass(slots=True)
class ApimService:
    """One APIM service: certificates, backends and policies keyed by lower-case id."""

    name: str
    certificates: dict[str, Entity] = field(default_factory=dict)
    backends: dict[str, Entity] = field(default_factory=dict)
    policies: dict[str, Entity] = field(default_factory=dict)  # "" = global, else api id


class DevstackState:
    """Both stores, one lock, ETag minting and JSON persistence."""

    def __init__(
        self, directory: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.path = directory / "state.json" if directory else None
        self.kv = KeyVaultStore(clock)
        self.services: dict[str, ApimService] = {}
        self._etag_counter = 0
        if self.path is not None and self.path.exists():
            self._load(json.loads(self.path.read_text()))

    def next_etag(self) -> str:
        """A fresh opaque ETag (ARM style, quoted)."""
        with self.lock:
            self._etag_counter += 1
            raw = self._etag_counter.to_bytes(8, "big")
        return '"' + base64.b64encode(raw).decode() + '"'

    def service(self, name: str) -> ApimService | None:
        """The service called ``name`` (case-insensitive), if it exists."""
        return self.services.get(name.lower())

    def ensure_service(self, name: str) -> ApimService:
        """Create the service if missing, with the default global policy."""
        with self.lock:
            existing = self.services.get(name.lower())
            if existing is not None:
                return existing
            svc = ApimService(name)
            svc.policies[""] = Entity("policy", dict(DEFAULT_GLOBAL_POLICY), self.next_etag())
            self.services[name.lower()] = svc
            return svc

    def save(self) -> None:
        """Write ``state.json`` atomically (no-op for an ephemeral state)."""
        if self.path is None:
            return
        with self.lock:
            payload = self._dump()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(self.path)

    def _dump(self) -> dict[str, Any]:
        return {
            "etag_counter": self._etag_counter,
            "kv": {
                "certificates": {
                    k: [asdict(v) for v in vs.values()] for k, vs in self.kv.certificates.items()
                },
                "policies": self.kv.policies,
            },
            "services": {
                key: {
                    "name": svc.name,
                    "certificates": [asdict(e) for e in svc.certificates.values()],
                    "backends": [asdict(e) for e in svc.backends.values()],
                    "policies": {k: asdict(e) for k, e in svc.policies.items()},
                }
                for key, svc in self.services.items()
            },
        }

    def _load(self, data: dict[str, Any]) -> None:
        self._etag_counter = int(data.get("etag_counter", 0))
        for key, versions in data.get("kv", {}).get("certificates", {}).items():
            self.kv.certificates[key] = {v["version"]: KvVersion(**v) for v in versions}
        self.kv.policies.update(data.get("kv", {}).get("policies", {}))
        for key, raw in data.get("services", {}).items():
            svc = ApimService(raw["name"])
            svc.certificates = {e["name"].lower(): Entity(**e) for e in raw["certificates"]}
            svc.backends = {e["name"].lower(): Entity(**e) for e in raw["backends"]}
            svc.policies = {k: Entity(**e) for k, e in raw["policies"].items()}
            self.services[key] = svc


DEFAULT_GLOBAL_POLICY: dict[str, Any] = {
    "format": "xml",
    "value": "<policies><inbound /><backend><forward-request /></backend><outbound /><on-error /></policies>",
}
