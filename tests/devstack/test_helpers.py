"""Pure helpers of the stand-ins: bundle parsing, OData filters, paging, merge patch."""

from __future__ import annotations

import base64

import pytest

from devstack.apim import FilterError, compile_filter, merge_patch, paginate
from devstack.bundles import PEM, PKCS12, BundleError, parse_bundle, secret_value, x5t
from devstack.pki import to_pkcs12


class TestParseBundle:
    def test_reads_pfx_raw_and_base64(self, devstack_pki):
        """PKCS#12 DER and its base64 parse to the same leaf and chain."""
        raw = devstack_pki.pfx()

        for data in (raw, base64.b64encode(raw)):
            bundle = parse_bundle(data)
            assert bundle.leaf == devstack_pki.first[0].cert
            assert len(bundle.chain) == 2
            assert bundle.content_type == PKCS12

    def test_reads_pem_and_finds_the_leaf_by_key(self, devstack_pki):
        """PEM in any order: the certificate matching the key is the leaf."""
        chain = devstack_pki.first
        pem = chain[0].key_pem + chain[2].pem + chain[1].pem + chain[0].pem

        bundle = parse_bundle(pem)

        assert bundle.leaf == chain[0].cert
        assert bundle.content_type == PEM

    def test_password_protected_pfx(self, devstack_pki):
        """A password opens it; a wrong one is a clear BundleError."""
        chain = devstack_pki.first
        data = to_pkcs12(chain[0], chain[1:], password=b"pw")

        assert parse_bundle(data, password=b"pw").key is not None
        with pytest.raises(BundleError, match="wrong password"):
            parse_bundle(data, password=b"nope")

    @pytest.mark.parametrize("data", [b"hello world!", b"-----BEGIN CERTIFICATE-----\nxx\n"])
    def test_garbage_is_a_bundle_error(self, data):
        """Unreadable input names the problem, never a traceback from deep inside."""
        with pytest.raises(BundleError):
            parse_bundle(data)

    def test_secret_value_round_trips(self, devstack_pki):
        """PKCS#12 secret values are base64 PFX that parse back to the same leaf."""
        bundle = parse_bundle(devstack_pki.pfx())

        again = parse_bundle(secret_value(bundle, PKCS12).encode())

        assert again.leaf == bundle.leaf
        assert "=" not in x5t(bundle.leaf)


FIELDS = {"name": lambda e: e["name"], "url": lambda e: e.get("url")}


class TestFilters:
    def test_quotes_and_and_inside_literals(self):
        """Doubled quotes escape; ' and ' inside a literal is not a conjunction."""
        keep = compile_filter("name eq 'rock and roll''s'", FIELDS)

        assert keep({"name": "Rock and Roll's"})
        assert not keep({"name": "rock"})

    @pytest.mark.parametrize("expression", ["name gt 'a'", "title eq 'x'", "name eq x"])
    def test_unsupported(self, expression):
        """Operators, fields and unquoted literals outside the subset are refused."""
        with pytest.raises(FilterError):
            compile_filter(expression, FIELDS)


class TestPaginate:
    def test_last_page_has_no_next_link(self):
        """Paging stops when the items run out."""
        page, next_link = paginate(list(range(5)), {"$top": "5"}, "https://h", "/p")

        assert page == [0, 1, 2, 3, 4]
        assert next_link is None

    @pytest.mark.parametrize("query", [{"$top": "0"}, {"$skip": "-1"}, {"$top": "x"}])
    def test_bad_top_skip(self, query):
        """$top < 1, $skip < 0 or non-integers are refused."""
        with pytest.raises(FilterError):
            paginate([1], query, "https://h", "/p")


class TestMergePatch:
    def test_nested_merge_null_deletes_lists_replace(self):
        """RFC 7396: objects merge, null deletes, arrays replace."""
        target = {"a": {"b": 1, "c": [1, 2]}, "d": 1}

        merged = merge_patch(target, {"a": {"c": [3]}, "d": None})

        assert merged == {"a": {"b": 1, "c": [3]}}
        assert target == {"a": {"b": 1, "c": [1, 2]}, "d": 1}
