"""One convergence of one inbound certificate: the policy documents that pin its thumbprints
(``docs/architecture.md``, "Inbound identities").

``InboundRollout`` is the inbound counterpart of ``rotation.rollout.converge.Rollout``: it lists
the certificate's versions once and every configured APIM service's policy documents, plans
with ``rotation.domain.inbound.plan_inbound`` (add the candidate next to the identities it
renews; retire old identities after the overlap or their expiry, never the last), validates
the candidate with the outbound ``validate`` step when some document would learn it (a
candidate that is not admitted changes nothing), and makes one compare-and-swap write per
changed document. A 412 drops the listing and re-plans, at most ``max_attempts`` times (one
more when the listing was borrowed from an earlier run, as a batch's is); the versions, the
trail's answer and the validation report are kept. It never writes audit records: the
service turns the ``Outcome`` into records, as for outbound.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rotation.domain.actions import EditPolicy
from rotation.domain.errors import ConfigError, PreconditionFailedError, RotationError
from rotation.domain.expiry import pinned_versions
from rotation.domain.inbound import (
    InboundPlan,
    PolicyDocument,
    PolicyScope,
    plan_inbound,
    settle,
)
from rotation.domain.model import (
    CertificateVersion,
    Decision,
    KeyVaultEvent,
    TargetResult,
)
from rotation.domain.planning import choose_candidate
from rotation.ports import InboundPolicies
from rotation.rollout.state import Outcome, RolloutBase, RolloutContext
from rotation.rollout.validate import validate

__all__ = ["InboundRollout", "PolicyListing", "list_policies"]

PolicyListing = dict[str, tuple[PolicyDocument, ...]]
"""Policy documents per APIM service id."""

_UNREAD = object()  # the trail has not been asked yet


def list_policies(inbound: InboundPolicies, services: tuple[str, ...]) -> PolicyListing:
    """Every configured service's policy documents (one ``list_policies`` per service)."""
    return {service: tuple(inbound.list_policies(service)) for service in services}


class InboundRollout(RolloutBase):
    """Converge one certificate's inbound identities onto its newest valid version."""

    def __init__(
        self,
        context: RolloutContext,
        vault_url: str,
        certificate_name: str,
        *,
        event: KeyVaultEvent | None = None,
        listing: PolicyListing | None = None,
        borrowed: bool = False,
    ) -> None:
        """``listing``: policy documents to plan from instead of listing (the reconcile sweep
        lists once for every inbound certificate; a batch keeps a certificate's between its
        events); a refused compare-and-swap re-lists. ``borrowed``: ``listing`` is one an
        earlier rollout of this certificate ended with (a batch's kept one), so a plan refused
        on it is one more attempt, not one of ``max_attempts``, as for ``Rollout``."""
        super().__init__(context, vault_url, certificate_name, event)
        self._listing = listing
        self._extra_attempts = 1 if borrowed and listing is not None else 0
        self._added: object = _UNREAD
        self.replanned = False  # a compare-and-swap refused a plan: the listing was re-read

    def run(self, *, write: bool) -> Outcome:
        """As ``RolloutBase.run``; then ``Outcome.in_use`` holds the versions the policy
        documents pin after the run (``expiry.pinned_versions``; while planning and validating
        it held those pinned before), which the expiry alert and the expiration gauge read."""
        out = super().run(write=write)
        if self._versions is not None:
            out.in_use = pinned_versions(out.targets.values(), self._versions)
        return out

    @property
    def listing(self) -> PolicyListing | None:
        """The policy documents the rollout planned from last (None: it never listed)."""
        return self._listing

    def _converge(self, *, write: bool) -> None:
        out = self.outcome
        inbound = self.ctx.inbound
        if inbound is None:
            raise ConfigError(
                [f"{self.name} is an inbound certificate but no policy adapter is configured"]
            )
        candidate = choose_candidate(self.versions())
        out.candidate = candidate
        if candidate is None:
            out.decision = Decision.IGNORED
            out.message = f"{self.name} has no enabled version"
            return
        attempts = self.ctx.max_attempts + self._extra_attempts
        for attempt in range(1, attempts + 1):
            final = attempt >= attempts
            plan = self._plan(inbound, candidate)
            if not self._admitted(plan, write=write):
                return
            try:
                self._apply(inbound, plan, final=final)
            except PreconditionFailedError:
                if final:
                    raise
                self._listing = None  # someone else wrote: re-read and re-plan
                self.replanned = True
            else:
                return

    def _admitted(self, plan: InboundPlan, *, write: bool) -> bool:
        """Decide on ``plan`` before any write: False when the rollout stops here (nothing to
        change, the candidate not admitted, or a dry run), with every target recorded."""
        out = self.outcome
        settled = settle(plan, certificate=self.name)
        if settled is not None:
            out.decision, out.message = settled
            for edit in plan.edits:
                out.record(edit)
            return False
        if plan.adds and not validate(self.ctx, out, self.versions()):
            for edit in plan.edits:  # nothing changes: the changes are marked, not made
                out.record(edit, TargetResult(out.decision) if edit.changes else None)
            return False
        out.decision = Decision.APPLIED
        if plan.notes:
            out.message = "; ".join(plan.notes)
        if not write:
            for edit in plan.edits:
                out.record(edit, TargetResult.SKIPPED_DRY_RUN if edit.changes else None)
            return False
        return True

    def _plan(self, inbound: InboundPolicies, candidate: CertificateVersion) -> InboundPlan:
        """List (unless given) and plan; reads the trail once, when a document pins a version."""
        out = self.outcome
        if self._listing is None:
            self._listing = list_policies(inbound, self.ctx.apim_services)
        documents = [d for docs in self._listing.values() for d in docs]
        now = self.ctx.clock.now()
        overlap = self.ctx.inbound_overlap
        plan = plan_inbound(
            documents, self.versions(), candidate, now=now, overlap=overlap, added=None
        )
        may_retire = any(len(e.after) > 1 for e in plan.edits)
        if may_retire and self.ctx.history is not None:  # the overlap needs the trail
            plan = plan_inbound(
                documents, self.versions(), candidate, now=now, overlap=overlap,
                added=self._added_at(),
            )  # fmt: skip
        out.actions = plan.edits
        out.in_use = plan.pinned
        previous = [v for v in plan.pinned if v.version.lower() != candidate.version.lower()]
        out.previous_version = previous[-1].version if previous else None
        return plan

    def _added_at(self) -> Mapping[tuple[str, str], datetime] | None:
        """The trail's "added at" for this certificate (None: no durable trail), read once."""
        if self._added is _UNREAD:
            history = self.ctx.history
            self._added = history.inbound_added_at(self.vault_url, self.name) if history else None
        return self._added if isinstance(self._added, Mapping) else None

    def _apply(self, inbound: InboundPolicies, plan: InboundPlan, *, final: bool) -> None:
        """One compare-and-swap write per changed document; the others are recorded as they are.

        Raises:
            RotationError: a write failed (recorded ``failed`` unless it is a 412 on a
                non-``final`` attempt: the rollout re-plans then).
        """
        out = self.outcome
        for edit in plan.edits:
            if not edit.changes:
                out.record(edit)
                continue
            try:
                inbound.put_policy(
                    _document(edit), expected_value=edit.expected_value, value=edit.value
                )
            except RotationError as exc:
                if final or not isinstance(exc, PreconditionFailedError):
                    out.record(edit, TargetResult.FAILED)
                raise
            out.record(edit, TargetResult.UPDATED, at=self.ctx.clock.now())


def _document(edit: EditPolicy) -> PolicyDocument:
    """The document as the plan read it (what the compare-and-swap expects)."""
    return PolicyDocument(
        service_id=edit.service_id,
        scope=PolicyScope(edit.scope),
        resource_id=edit.resource_id,
        value=edit.expected_value,
    )
