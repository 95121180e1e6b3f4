"""One convergence of one certificate: resolve, plan, validate, apply, verify
(``docs/architecture.md``, "The rotation path").

``Rollout`` is the unit of work behind ``RotationService``: it makes the minimum of calls
(APIM list pages, 1 version list, 1 secret read only when something must change, 1 write per
changed target, 1 verify read per changed entity; ``docs/architecture.md``, "Budgets"),
re-reads and re-plans on 412 up to ``max_attempts``, and accumulates what happened in an
``Outcome``. It never writes audit records; the service turns the outcome into records
(``rotation.rollout.record``). Errors are captured in ``Outcome.error``.

The steps are modules of this package: ``resolve`` (resolve and plan), ``validate``, ``apply``
and ``verify``; the decisions they act on are ``rotation.domain.decisions``'.
"""

from __future__ import annotations

from rotation.domain.actions import AlreadyCurrent, RetireEntity, Superseded
from rotation.domain.bindings import Binding
from rotation.domain.decisions import settle
from rotation.domain.errors import PreconditionFailedError
from rotation.domain.follow import needs_validation, pin_back
from rotation.domain.model import (
    Decision,
    KeyVaultEvent,
    Strategy,
    TargetResult,
)
from rotation.domain.planning import needs_change
from rotation.rollout.apply import apply_actions, write_action
from rotation.rollout.canary import run_canary
from rotation.rollout.resolve import bindings_in, list_inventory, plan
from rotation.rollout.state import Inventory, RolloutBase, RolloutContext
from rotation.rollout.validate import validate

__all__ = ["Rollout"]

_UNREAD = object()  # the trail's last validated version has not been asked for yet


class Rollout(RolloutBase):
    """Converge one certificate's APIM bindings onto its newest valid version."""

    def __init__(
        self,
        context: RolloutContext,
        vault_url: str,
        certificate_name: str,
        *,
        event: KeyVaultEvent | None = None,
        inventory: Inventory | None = None,
        borrowed: bool = False,
    ) -> None:
        """``inventory``: APIM listings to plan from instead of listing (reconcile's sweep, a
        replay's shared listing); a compare-and-swap that refuses a plan drops it and re-lists.
        ``borrowed``: ``inventory`` is a listing an earlier rollout made (a replay's shared
        one), so a plan refused on it is one more attempt, not one of ``max_attempts``."""
        super().__init__(context, vault_url, certificate_name, event)
        self._inventory = inventory
        self._extra_attempts = 1 if borrowed and inventory is not None else 0
        self._final = True
        self._validated: object = _UNREAD
        self.replanned = False  # a compare-and-swap refused a plan: the listing was re-read

    @property
    def inventory(self) -> Inventory | None:
        """The APIM listing the rollout planned from last (None: it never got that far)."""
        return self._inventory

    def _converge(self, *, write: bool) -> None:
        out = self.outcome
        attempts = self.ctx.max_attempts + self._extra_attempts
        for attempt in range(1, attempts + 1):
            self._final = attempt >= attempts
            if not self._resolve():
                return
            if not needs_change(out.actions):
                if self._unvalidated():
                    self._check_presented(write=write)
                    return
                self._settle(write=write)
                return
            if not validate(self.ctx, out, self.versions()) or not run_canary(
                self.ctx, out, self.versions()
            ):
                self._mark_all(TargetResult(out.decision))
                self._fall_back(write=write)
                return
            if not write:
                self._mark_all(TargetResult.SKIPPED_DRY_RUN)
                return
            try:
                apply_actions(self.ctx.gateway, out, final=self._final)
            except PreconditionFailedError:
                if self._final:
                    raise
                self._inventory = None  # someone else wrote: re-read and re-plan
                self.replanned = True
            else:
                return

    def _resolve(self) -> bool:
        """Resolve and plan (``rotation.rollout.resolve``); False when the rollout stops."""
        bindings = self._bindings()
        if not bindings:
            self.outcome.message = (
                f"no APIM certificate entity references {self.vault_url}/secrets/{self.name}"
            )
            return False
        return plan(self.ctx, self.outcome, bindings, self.versions(), self.event)

    def _bindings(self) -> tuple[Binding, ...]:
        if self._inventory is None:
            self._inventory = list_inventory(self.ctx, self.vault_url, self.name)
        self.outcome.bindings = bindings_in(self._inventory, self.vault_url, self.name)
        return self.outcome.bindings

    # --- follow -------------------------------------------------------------------------------

    def _last_validated(self) -> str | None:
        """The trail's last validated version (``rotation.domain.follow``), read once."""
        if self._validated is _UNREAD:
            history = self.ctx.history
            self._validated = (
                history.last_validated(self.vault_url, self.name) if history else None
            )
        return self._validated if isinstance(self._validated, str) else None

    def _unvalidated(self) -> bool:
        """``follow``: nothing to change, yet an entity presents a candidate the trail does not
        say certrotate validated (APIM polled first, or a refresh by hand)."""
        out = self.outcome
        if self.ctx.strategy is not Strategy.FOLLOW or out.candidate is None:
            return False
        if not needs_validation(out.bindings, out.candidate, None):
            return False  # no entity presents the candidate: the trail need not be read
        return needs_validation(out.bindings, out.candidate, self._last_validated())

    def _check_presented(self, *, write: bool) -> None:
        """Validate what the entities already present: ``already_current`` when it passes
        (now on record as validated), else pin back (``binding.unvalidated``)."""
        out = self.outcome
        if validate(self.ctx, out, self.versions()):
            self._settle(write=write)
            return
        self._mark_all(TargetResult(out.decision))
        self._fall_back(write=write)

    def _fall_back(self, *, write: bool) -> None:
        """``follow``: a rejected candidate pins versionless entities to the last validated
        version (``rotation.domain.follow.pin_back``), so APIM's poll cannot pick it up."""
        out = self.outcome
        if self.ctx.strategy is not Strategy.FOLLOW or out.decision is not Decision.REJECTED:
            return
        assert out.candidate is not None  # noqa: S101 - set by resolve.plan
        fallback = pin_back(out.bindings, self.versions(), out.candidate, self._last_validated())
        for code in fallback.findings:
            out.note(str(code))
        note = fallback.message
        if note and not write and fallback.actions:
            note = f"dry run, would have {note}"  # "would have pinned 2 versionless entities …"
        if note:
            out.message = f"{out.message}; {note}" if out.message else note
        for action in fallback.actions:
            if write:
                write_action(self.ctx.gateway, out, action, final=True)
            else:
                out.record(action, TargetResult.SKIPPED_DRY_RUN)

    def _mark_all(self, result: TargetResult) -> None:
        """Record every target; the ones that would change get ``result``."""
        for action in self.outcome.actions:
            changes = not isinstance(action, AlreadyCurrent | Superseded)
            self.outcome.record(action, result if changes else None)

    def _settle(self, *, write: bool) -> None:
        """Nothing changes what is presented: no secret read; only pending retirements run."""
        out = self.outcome
        out.decision = settle(out.actions)
        if not write:
            self._mark_all(TargetResult.SKIPPED_DRY_RUN)
            return
        for action in out.actions:
            if isinstance(action, RetireEntity):
                write_action(self.ctx.gateway, out, action, final=self._final)
            else:
                out.record(action)
