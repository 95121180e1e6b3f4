"""NIST PKITS (2011, from cryptography-vectors) through ``validate_bundle``, in hard and soft mode.

Every case gives its candidate with the CAs that can sit on its path and the CRLs of those CAs
(``tests/pkits/vectors.py``); the verdict is judged on the path and revocation findings only
(PKITS certificates are RSA 1024 / SHA-1 without clientAuth, which the product's own rules
reject). ``tests/pkits/expected.py`` records each case's expected verdict and the reason.
"""

from __future__ import annotations

import pytest

from rotation.domain.pkix import TrustAnchors
from rotation.domain.policy import RevocationMode
from tests.pkits import vectors
from tests.pkits.expected import EXPECTED

NAMES = vectors.case_names()


@pytest.fixture(scope="module", name="anchors")
def _anchors() -> TrustAnchors:
    return TrustAnchors([vectors.anchor()])


def test_every_case_has_an_expectation():
    """No PKITS case goes unjudged, and the figures of the issue hold on the expectations."""
    assert sorted(EXPECTED) == NAMES
    valid = [n for n in NAMES if n.startswith("Valid")]
    invalid = [n for n in NAMES if n.startswith("Invalid")]
    assert all(EXPECTED[n][0] == "reject" for n in invalid)
    assert sum(EXPECTED[n][0] == "accept" for n in valid) >= 80


@pytest.mark.parametrize("name", NAMES)
def test_hard(name: str, anchors: TrustAnchors):
    """Hard mode: the expected verdict, rejected by the expected finding code."""
    verdict, code, reason = EXPECTED[name]
    case = vectors.load(name)
    if case is None:  # cryptography cannot parse it: format.unreadable in the product
        assert verdict == "reject", reason
        return

    outcome = vectors.run(case, RevocationMode.HARD, anchors)

    assert outcome.accepted == (verdict == "accept"), (reason, sorted(outcome.codes))
    if code is not None:
        assert code in outcome.codes, (reason, sorted(outcome.codes))


@pytest.mark.parametrize("name", NAMES)
def test_soft(name: str, anchors: TrustAnchors):
    """Soft mode: a valid case is accepted; an invalid one is rejected or carries the warning."""
    case = vectors.load(name)
    if case is None:
        return
    reason = EXPECTED[name][2]

    outcome = vectors.run(case, RevocationMode.SOFT, anchors)

    if name.startswith("Valid"):
        assert outcome.accepted, (reason, sorted(outcome.codes))
    elif outcome.accepted:
        assert "revocation.unavailable" in outcome.codes, reason
