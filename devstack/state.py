"""The stand-ins' state: Key Vault certificate versions and APIM entities, persisted in SQLite.

One ``DevstackState`` holds both stores (Key Vault; APIM certificates, backends, APIs and their
operations, products, and the policy documents of every scope) behind one re-entrant lock. The
working set lives in memory (lookups are dict accesses, O(1) per entity, so seeding thousands of
backends stays fast); with a state directory every change is also recorded in
``DIR/state.sqlite`` (the standard library's ``sqlite3``). A ``Store`` and an ``Entity`` note which rows they changed, so ``save()``
writes only those rows in one transaction: a write costs O(changed data), not O(state). An
``--ephemeral`` state has no database and never touches disk. A ``state.json`` left by an older
devstack is imported once (then renamed ``state.json.imported``).

Lists read a ``Store.view``: the (filtered) entities in insertion order, built once and reused
until the store changes, so each page of a listing costs O(page), not a copy of the store.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from devstack.bundles import ParsedBundle, secret_value, subject_string, thumbprint_hex, x5t

__all__ = [
    "DATABASE_FILE",
    "ApimService",
    "DevstackState",
    "Entity",
    "KeyVaultStore",
    "KvVersion",
    "Store",
]

DATABASE_FILE = "state.sqlite"
_LEGACY_FILE = "state.json"
_KINDS = (
    "certificates",
    "backends",
    "policies",
    "apis",
    "operations",
    "products",
    "product_policies",
    "operation_policies",
)
_VIEWS_KEPT = 8  # cached list views per store (one per distinct filter)


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

    def __init__(
        self, clock: Callable[[], float], changed: Callable[[str, str | None], None]
    ) -> None:
        self._clock = clock
        self._changed = changed  # (name, version or None for the policy) -> None
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
        self._changed(name.lower(), entry.version)
        self._changed(name.lower(), None)
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
        """Mark ``entry`` updated now (and changed: call it after editing a version)."""
        entry.updated = max(int(self._clock()), entry.created)
        self._changed(entry.name.lower(), entry.version)


@dataclass(slots=True)
class Entity:
    """An APIM entity: its (original-case) name, ARM ``properties`` and current ETag.

    Assigning ``properties`` or ``etag`` of an entity held in a ``Store`` marks it changed (so
    it is saved, and list views are rebuilt); edit ``properties`` by assigning a new dict.
    """

    name: str
    properties: dict[str, Any]
    etag: str
    home: tuple[Store, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, attr: str, value: Any) -> None:
        object.__setattr__(self, attr, value)
        if attr != "home":
            home = getattr(self, "home", None)  # unset while __init__ runs
            if home is not None:
                home[0].changed(home[1])

    def as_row(self) -> dict[str, Any]:
        """What the database keeps of it."""
        return {"name": self.name, "properties": self.properties, "etag": self.etag}


class Store(dict[str, Entity]):
    """Entities of one kind in one service, by lower-case id, in insertion order.

    A plain dict to its readers; every insert, replace or delete (and every attribute change of
    an entity it holds) bumps ``generation`` and reports the key to ``on_change``.
    """

    __slots__ = ("_on_change", "_views", "generation")

    def __init__(self, on_change: Callable[[str, bool], None]) -> None:
        super().__init__()
        self._on_change = on_change
        self._views: dict[Hashable, tuple[int, list[Entity]]] = {}
        self.generation = 0

    def changed(self, key: str, *, removed: bool = False) -> None:
        """Record that the entity at ``key`` changed (``removed``: went)."""
        self.generation += 1
        self._on_change(key, removed)

    def __setitem__(self, key: str, entity: Entity) -> None:
        super().__setitem__(key, entity)
        entity.home = (self, key)
        self.changed(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.changed(key, removed=True)

    def pop(self, key: str, *default: Any) -> Any:
        """``dict.pop``, recorded."""
        had = key in self
        value = super().pop(key, *default)
        if had:
            self.changed(key, removed=True)
        return value

    def popitem(self) -> tuple[str, Entity]:
        """``dict.popitem``, recorded."""
        key, value = super().popitem()
        self.changed(key, removed=True)
        return key, value

    def setdefault(self, key: str, default: Entity) -> Entity:
        """``dict.setdefault``, recorded."""
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``, recorded."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        """``dict.clear``, recorded."""
        for key in list(self):
            del self[key]

    def load(self, rows: Iterable[tuple[str, Entity]]) -> None:
        """Fill from saved rows without recording them as changes."""
        for key, entity in rows:
            super().__setitem__(key, entity)
            entity.home = (self, key)

    def view(
        self, key: Hashable, build: Callable[[Iterable[Entity]], list[Entity]]
    ) -> list[Entity]:
        """``build(entities)`` (e.g. the ones a filter keeps), reused while the store does not
        change: the pages of one listing share it. Treat the result as read-only."""
        cached = self._views.get(key)
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        items = build(self.values())
        self._views.pop(key, None)
        self._views[key] = (self.generation, items)
        while len(self._views) > _VIEWS_KEPT:
            del self._views[next(iter(self._views))]
        return items


class ApimService:
    """One APIM service: its entities by kind, each a ``Store`` keyed by lower-case id.

    ``certificates``, ``backends``, ``apis`` and ``products`` by entity id; ``operations`` by
    ``{api}/{operation}``. Policy documents: ``policies`` holds the global one (key ``""``) and
    the APIs' (key: the API id), ``product_policies`` the products' (the product id) and
    ``operation_policies`` the operations' (``{api}/{operation}``).
    """

    __slots__ = (
        "apis",
        "backends",
        "certificates",
        "name",
        "operation_policies",
        "operations",
        "policies",
        "product_policies",
        "products",
    )

    def __init__(
        self,
        name: str,
        on_change: Callable[[str, str, bool], None] = lambda _kind, _key, _removed: None,
    ) -> None:
        self.name = name

        def store(kind: str) -> Store:
            return Store(lambda key, gone: on_change(kind, key, gone))

        self.certificates = store("certificates")
        self.backends = store("backends")
        self.policies = store("policies")
        self.apis = store("apis")
        self.operations = store("operations")
        self.products = store("products")
        self.product_policies = store("product_policies")
        self.operation_policies = store("operation_policies")

    def store(self, kind: str) -> Store:
        """The store of ``kind`` (one of the attribute names above)."""
        if kind not in _KINDS:
            raise KeyError(kind)
        store: Store = getattr(self, kind)
        return store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv_versions (
    name TEXT NOT NULL, version TEXT NOT NULL, created INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS kv_policies (name TEXT PRIMARY KEY, content_type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (key TEXT PRIMARY KEY, name TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    service TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (service, kind, key));
"""
_UPSERT_ENTITY = (
    "INSERT INTO entities (service, kind, key, seq, body) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (service, kind, key) DO UPDATE SET body = excluded.body"
)


class DevstackState:
    """Both stores, one lock, ETag minting and SQLite persistence of what changed."""

    def __init__(
        self, directory: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.path = directory / DATABASE_FILE if directory else None
        self.kv = KeyVaultStore(clock, self._kv_changed)
        self.services: dict[str, ApimService] = {}
        self._etag_counter = 0
        self._seq = 0  # insertion order of entity rows (a replaced entity keeps its place)
        # (service key, kind, entity key) -> removed since the last save; in the order of first
        # change, so new rows get their sequence numbers in insertion order
        self._dirty: dict[tuple[str, str, str], bool] = {}
        self._dirty_versions: set[tuple[str, str | None]] = set()  # (name, version | None)
        self._dirty_services: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self.saved_rows = 0  # rows the last save() wrote or deleted (meta row included)
        if directory is not None:
            self._open(directory)

    # --- the in-memory model ------------------------------------------------------------------

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
            svc = self._new_service(name.lower(), name)
            self._dirty_services.add(name.lower())
            svc.policies[""] = Entity("policy", dict(DEFAULT_GLOBAL_POLICY), self.next_etag())
            return svc

    def _new_service(self, key: str, name: str) -> ApimService:
        def changed(kind: str, entity_key: str, removed: bool) -> None:
            if self._db is None:
                return
            row = (key, kind, entity_key)
            if removed:  # a later re-insert goes to the end of the list, as in the dict
                self._dirty.pop(row, None)
                self._dirty[row] = True
            else:
                self._dirty.setdefault(row, False)

        svc = ApimService(name, changed)
        self.services[key] = svc
        return svc

    def _kv_changed(self, name: str, version: str | None) -> None:
        if self._db is not None:
            self._dirty_versions.add((name, version))

    # --- persistence --------------------------------------------------------------------------

    def save(self) -> None:
        """Write what changed since the last save, in one transaction (no-op when ephemeral)."""
        with self.lock:
            db = self._db
            if db is None:
                return
            before = db.total_changes
            with db:
                self._write_services(db)
                self._write_versions(db)
                self._write_entities(db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('etag_counter', ?)",
                    (str(self._etag_counter),),
                )
            self.saved_rows = db.total_changes - before

    def close(self) -> None:
        """Save, then close the database (the state stays usable in memory, ephemerally)."""
        with self.lock:
            self.save()
            if self._db is not None:
                self._db.close()
                self._db = None

    def _write_services(self, db: sqlite3.Connection) -> None:
        for key in sorted(self._dirty_services):
            self._seq += 1
            db.execute(
                "INSERT OR IGNORE INTO services (key, name, seq) VALUES (?, ?, ?)",
                (key, self.services[key].name, self._seq),
            )
        self._dirty_services.clear()

    def _write_versions(self, db: sqlite3.Connection) -> None:
        for name, version in self._dirty_versions:
            if version is None:
                db.execute(
                    "INSERT OR REPLACE INTO kv_policies (name, content_type) VALUES (?, ?)",
                    (name, self.kv.policies[name]),
                )
                continue
            entry = self.kv.certificates[name][version]
            db.execute(
                "INSERT OR REPLACE INTO kv_versions (name, version, created, body) "
                "VALUES (?, ?, ?, ?)",
                (name, version, entry.created, json.dumps(asdict(entry))),
            )
        self._dirty_versions.clear()

    def _write_entities(self, db: sqlite3.Connection) -> None:
        for (service, kind, key), removed in self._dirty.items():
            entity = self.services[service].store(kind).get(key)
            if removed or entity is None:
                db.execute(
                    "DELETE FROM entities WHERE service = ? AND kind = ? AND key = ?",
                    (service, kind, key),
                )
            if entity is None:
                continue
            self._seq += 1
            db.execute(
                _UPSERT_ENTITY, (service, kind, key, self._seq, json.dumps(entity.as_row()))
            )
        self._dirty.clear()

    def _open(self, directory: Path) -> None:
        assert self.path is not None
        legacy = directory / _LEGACY_FILE
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        # isolation_level=None is autocommit; ``with db`` around explicit BEGIN keeps one
        # transaction per save.
        db.isolation_level = "DEFERRED"
        self._db = db
        self._read(db)
        if not self.services and not self.kv.certificates and legacy.is_file():
            self._import_legacy(json.loads(legacy.read_text()))
            self.save()
            legacy.replace(legacy.with_name(_LEGACY_FILE + ".imported"))

    def _read(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = 'etag_counter'").fetchone()
        self._etag_counter = int(row[0]) if row else 0
        self._seq = int(
            db.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM services), 0),"
                " coalesce((SELECT max(seq) FROM entities), 0))"
            ).fetchone()[0]
        )
        for name, body in db.execute("SELECT name, body FROM kv_versions ORDER BY name, created"):
            version = KvVersion(**json.loads(body))
            self.kv.certificates.setdefault(name, {})[version.version] = version
        self.kv.policies.update(db.execute("SELECT name, content_type FROM kv_policies"))
        for key, name in db.execute("SELECT key, name FROM services ORDER BY seq"):
            self._new_service(key, name)
        rows = db.execute("SELECT service, kind, key, body FROM entities ORDER BY seq")
        for service, kind, key, body in rows:
            self.services[service].store(kind).load([(key, Entity(**json.loads(body)))])

    def _import_legacy(self, data: dict[str, Any]) -> None:
        """Take over an older devstack's ``state.json`` (every row is new to the database)."""
        self._etag_counter = int(data.get("etag_counter", 0))
        for key, versions in data.get("kv", {}).get("certificates", {}).items():
            for raw in versions:
                entry = KvVersion(**raw)
                self.kv.certificates.setdefault(key, {})[entry.version] = entry
                self._kv_changed(key, entry.version)
        for name, content_type in data.get("kv", {}).get("policies", {}).items():
            self.kv.policies[name] = content_type
            self._kv_changed(name, None)
        for key, raw in data.get("services", {}).items():
            svc = self._new_service(key, raw["name"])
            self._dirty_services.add(key)
            for kind in _KINDS:
                entries = raw.get(kind, {})
                pairs = (
                    entries.items()
                    if kind == "policies"
                    else ((e["name"].lower(), e) for e in entries)
                )
                for entity_key, e in pairs:
                    svc.store(kind)[entity_key] = Entity(e["name"], e["properties"], e["etag"])


DEFAULT_GLOBAL_POLICY: dict[str, Any] = {
    "format": "rawxml",
    "value": "<policies><inbound /><backend><forward-request /></backend><outbound /><on-error /></policies>",
}
