"""The canary inside ``RotationService`` over the fakes and the real ``TlsCanary``/``TlsProber``
(the fake backends' ``https://….example.test`` URLs do not resolve: unreachable)."""

from __future__ import annotations

from collections.abc import Sequence

from rotation.adapters.canary import ProbeRequest, TlsCanary, TlsProber
from rotation.domain.canary import CanaryMode, ProbeObservation
from rotation.domain.model import Decision, Trigger
from tests.service.conftest import V2, World, make_event


class CountingProber:
    """``TlsProber`` that remembers how many probes each round asked for."""

    def __init__(self) -> None:
        self.inner = TlsProber(timeout=2.0)
        self.rounds: list[int] = []

    def probe_all(self, requests: Sequence[ProbeRequest]) -> list[ProbeObservation]:
        self.rounds.append(len(requests))
        return self.inner.probe_all(requests)


def test_warn_goes_on_and_a_replan_after_412_does_not_probe_again(rotated: World):
    prober = CountingProber()
    service = rotated.service(canary=TlsCanary(prober), canary_mode=CanaryMode.WARN)
    rotated.gateway.conflict_on_write(1)
    rotated.reset_counts()

    record = service.handle(make_event(V2), trigger=Trigger.EVENTGRID)

    assert record.decision is Decision.APPLIED
    assert "canary.unreachable" in record.findings
    assert (record.message or "").startswith("canary: backend partner-api")
    assert prober.rounds == [2]  # the candidate and the version in use, once across the re-plan
    assert rotated.source.calls["get_secret"] == 2  # the candidate once, the version in use once


def test_enforce_defers_an_unreachable_backend_and_writes_nothing(rotated: World):
    service = rotated.service(
        canary=TlsCanary(TlsProber(timeout=2.0)), canary_mode=CanaryMode.ENFORCE
    )
    rotated.reset_counts()

    record = service.handle(make_event(V2), trigger=Trigger.EVENTGRID)

    assert record.decision is Decision.DEFERRED
    assert "canary.unreachable" in record.findings
    assert rotated.gateway.updates == []
    assert {t.result for t in record.targets} == {"deferred"}


def test_off_never_probes(rotated: World):
    prober = CountingProber()
    service = rotated.service(canary=TlsCanary(prober), canary_mode=CanaryMode.OFF)
    rotated.reset_counts()

    record = service.handle(make_event(V2), trigger=Trigger.EVENTGRID)

    assert record.decision is Decision.APPLIED
    assert prober.rounds == []
    assert rotated.source.calls["get_secret"] == 1
    assert not any(f.startswith("canary.") for f in record.findings)
