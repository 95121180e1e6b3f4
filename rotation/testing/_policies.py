"""``FakeInboundPolicies``: APIM policy documents in memory, with the adapter's compare-and-swap.

It behaves as ``ArmInboundPolicies`` does against APIM (tests/contract runs the same tests on
both): a service is known once it is added or holds a document (listing any other is the
adapter's ``ConfigError``), ``add_service`` gives it APIM's default global policy, listed
documents carry their ETags (the adapter reads each one), and documents come back under the
service id the caller passed (ids are case-insensitive).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from rotation.domain.errors import ConfigError, PreconditionFailedError
from rotation.domain.inbound import PolicyDocument, PolicyScope

__all__ = ["DEFAULT_GLOBAL_POLICY", "FakeInboundPolicies", "PolicyWrite", "policy_id"]

DEFAULT_GLOBAL_POLICY = "<policies><inbound /><backend><forward-request /></backend><outbound /><on-error /></policies>"
"""The global policy a new APIM service has (``add_service``)."""

_PATHS = {
    PolicyScope.GLOBAL: "",
    PolicyScope.PRODUCT: "/products/{0}",
    PolicyScope.API: "/apis/{0}",
    PolicyScope.OPERATION: "/apis/{0}/operations/{1}",
}


def policy_id(service_id: str, scope: PolicyScope, *names: str) -> str:
    """The ARM id of the policy at ``scope`` (``names``: the product, the API, or the API and
    the operation)."""
    return f"{service_id.rstrip('/')}{_PATHS[scope].format(*names)}/policies/policy"


@dataclass(frozen=True, slots=True)
class PolicyWrite:
    """One write that reached a document: its id, and its value before and after."""

    resource_id: str
    before: str
    after: str


class FakeInboundPolicies:
    """An in-memory ``InboundPolicies``: documents per service, ETags that change on every write.

    ``put_policy`` does what the adapter does: one read (counted as ``get_policy``), refused with
    ``PreconditionFailedError`` unless the document exists and holds ``expected_value``, then the
    write "with If-Match" that ETag (counted as ``write_policy``, whether it lands or not).
    ``race_once(edit)`` makes the next write lose a race: another writer changes the document
    (``edit`` maps its value, default unchanged; the ETag moves) between the read and the write,
    which then fails with a 412. ``delete_policy`` is another writer removing a document.
    ``writes`` logs every write that landed, ``calls`` counts each method, ``fail`` maps a method
    name to an error it raises.
    """

    def __init__(self) -> None:
        self._documents: dict[str, dict[str, PolicyDocument]] = {}
        self._etag = 0
        self.writes: list[PolicyWrite] = []
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, Exception] = {}
        self._race: Callable[[str], str] | None = None

    def add_service(self, service_id: str) -> PolicyDocument:
        """A new APIM service: it exists, with the default global policy (as APIM creates
        one); returns that document."""
        return self.add_policy(service_id, PolicyScope.GLOBAL, DEFAULT_GLOBAL_POLICY)

    def add_policy(
        self, service_id: str, scope: PolicyScope, value: str, *names: str
    ) -> PolicyDocument:
        """Store the document at ``scope`` (see ``policy_id`` for ``names``), replacing any
        there with a new ETag; the service exists from now on. Returns the document."""
        document = PolicyDocument(
            service_id=service_id, scope=scope, resource_id=policy_id(service_id, scope, *names),
            value=value, etag=self._next_etag(),
        )  # fmt: skip
        self._documents.setdefault(service_id.lower(), {})[document.resource_id.lower()] = document
        return document

    def delete_policy(self, resource_id: str) -> None:
        """Another writer deletes the document (uncounted; a missing one is no error)."""
        for documents in self._documents.values():
            documents.pop(resource_id.lower(), None)

    def value(self, resource_id: str) -> str:
        """The document's value now (uncounted).

        Raises:
            KeyError: there is no such document.
        """
        return self._find(resource_id).value

    def document(self, resource_id: str) -> PolicyDocument:
        """The document now, with its ETag (uncounted).

        Raises:
            KeyError: there is no such document.
        """
        return self._find(resource_id)

    def race_once(self, edit: Callable[[str], str] | None = None) -> None:
        """The next ``put_policy`` loses a race to a writer applying ``edit`` (default: none
        to the value, only the ETag moves)."""
        self._race = edit or (lambda value: value)

    # --- InboundPolicies --------------------------------------------------------------------

    def list_policies(self, service_id: str) -> Iterable[PolicyDocument]:
        """Every document of the service, with its ETag, under ``service_id`` as passed.

        Raises:
            ConfigError: the service does not exist (neither added nor holding a document).
        """
        self._check("list_policies")
        documents = self._documents.get(service_id.lower())
        if documents is None:
            problem = f"ROTATION_APIM_SERVICES: APIM service {service_id} not found"
            raise ConfigError([f"{problem} (list_policies: HTTP 404)"])
        return [_under(d, service_id) for d in documents.values()]

    def put_policy(
        self, document: PolicyDocument, *, expected_value: str, value: str
    ) -> PolicyDocument:
        """Compare-and-swap ``document``'s value (see the class docstring); returns the
        document as written, under the ids the caller passed.

        Raises:
            PreconditionFailedError: gone, changed since the plan read it, or a lost race.
        """
        self._check("put_policy")
        self.calls["get_policy"] += 1
        current = self._documents.get(document.service_id.lower(), {}).get(
            document.resource_id.lower()
        )
        if current is None or current.value != expected_value:
            what = "gone" if current is None else "changed"
            raise PreconditionFailedError(
                f"apim put_policy {document.resource_id!r}: {what} since it was listed",
                service="apim", operation="put_policy", status_code=412,
            )  # fmt: skip
        self.calls["write_policy"] += 1
        if self._race is not None:
            edit, self._race = self._race, None
            self._store(replace(current, value=edit(current.value), etag=self._next_etag()))
            raise PreconditionFailedError(
                f"policy {document.resource_id}: the ETag moved before the write (412)",
                service="apim", operation="put_policy", status_code=412,
            )  # fmt: skip
        written = replace(current, value=value, etag=self._next_etag())
        self._store(written)
        self.writes.append(PolicyWrite(current.resource_id, current.value, value))
        return replace(written, service_id=document.service_id, resource_id=document.resource_id)

    # --- helpers ------------------------------------------------------------------------------

    def _check(self, method: str) -> None:
        self.calls[method] += 1
        if method in self.fail:
            raise self.fail[method]

    def _next_etag(self) -> str:
        self._etag += 1
        return f'W/"policy-{self._etag}"'

    def _store(self, document: PolicyDocument) -> None:
        self._documents[document.service_id.lower()][document.resource_id.lower()] = document

    def _find(self, resource_id: str) -> PolicyDocument:
        for documents in self._documents.values():
            found = documents.get(resource_id.lower())
            if found is not None:
                return found
        raise KeyError(resource_id)


def _under(document: PolicyDocument, service_id: str) -> PolicyDocument:
    """``document`` with its ids spelled from ``service_id`` (the same service in any case), as
    the adapter builds them from the id it was given."""
    stored = document.service_id.rstrip("/")
    tail = document.resource_id[len(stored) :]
    return replace(document, service_id=service_id, resource_id=service_id.rstrip("/") + tail)
