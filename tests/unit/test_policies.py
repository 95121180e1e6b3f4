"""Byte-preserving edits of validate-client-certificate identities (rotation.domain.policies).

Every edit test states the whole document before and after: the only difference allowed is the
identity line added or removed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotation.domain.errors import RotationError
from rotation.domain.policies import (
    LastIdentityError,
    PinnedThumbprint,
    PolicyDocumentError,
    add_thumbprint,
    find_thumbprints,
    normalize_thumbprint,
    remove_thumbprint,
)

OLD = "A1" * 20
NEW = "B2" * 20
OTHER = "C3" * 20

# Global scope: expressions with "<", ">", "&&" and the attribute's own quotes, a comment that
# mentions an identity, CDATA holding XML, and a multi-line @{ } block.
GLOBAL = """<policies>
    <inbound>
        <!-- callers pin: <identity thumbprint="A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1" /> -->
        <set-variable name="big" value="@(context.Request.Body.As<string>(preserveContent: true).Length > 10 && context.Request.Headers.GetValueOrDefault("X-Ok","<no>") != "")" />
        <choose>
            <when condition="@(context.Request.Certificate == null || !context.Request.Certificate.Verify())">
                <return-response>
                    <set-status code="403" reason="Invalid client certificate" />
                    <set-body><![CDATA[<error code="cert"/>]]></set-body>
                </return-response>
            </when>
        </choose>
        <validate-client-certificate validate-revocation="true" validate-trust="true" validate-not-before="true" validate-not-after="true" ignore-error="false">
            <identities>
                <identity thumbprint="A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1" />
            </identities>
        </validate-client-certificate>
        <set-header name="X-Caller" exists-action="override">
            <value>@{
                var cert = context.Request.Certificate; // caller's certificate, if any
                return cert == null ? "none" : cert.Thumbprint.Substring(0, 8) + "<" + '>' + "}";
            }</value>
        </set-header>
    </inbound>
    <backend>
        <forward-request />
    </backend>
    <outbound />
    <on-error />
</policies>"""

GLOBAL_ADDED = GLOBAL.replace(
    """                <identity thumbprint="A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1" />
""",
    """                <identity thumbprint="A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1" />
                <identity thumbprint="B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2" />
""",
)

# Product scope, CRLF line endings, single quotes, no space before "/>", lower-case thumbprint,
# two validate-client-certificate blocks (one in a <choose>), one of them also pinning OTHER.
PRODUCT = (
    "<policies>\r\n"
    "\t<inbound>\r\n"
    "\t\t<base />\r\n"
    "\t\t<choose>\r\n"
    "\t\t\t<when condition='@(context.Request.Url.Path.StartsWith(\"/partner\"))'>\r\n"
    "\t\t\t\t<validate-client-certificate validate-trust='false'>\r\n"
    "\t\t\t\t\t<identities>\r\n"
    "\t\t\t\t\t\t<identity thumbprint='c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3' common-name='partner'/>\r\n"
    "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n"
    "\t\t\t\t\t</identities>\r\n"
    "\t\t\t\t</validate-client-certificate>\r\n"
    "\t\t\t</when>\r\n"
    "\t\t\t<otherwise>\r\n"
    "\t\t\t\t<validate-client-certificate>\r\n"
    "\t\t\t\t\t<identities>\r\n"
    "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n"
    "\t\t\t\t\t</identities>\r\n"
    "\t\t\t\t</validate-client-certificate>\r\n"
    "\t\t\t</otherwise>\r\n"
    "\t\t</choose>\r\n"
    "\t</inbound>\r\n"
    "</policies>\r\n"
)
PRODUCT_ADDED = PRODUCT.replace(
    "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n",
    "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n"
    "\t\t\t\t\t\t<identity thumbprint='b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2'/>\r\n",
)

# API scope: identities with other attributes and an explicit end tag; an identity that is not
# a thumbprint (subject and issuer) counts as an identity of its block.
API = """<policies>
  <inbound>
    <base />
    <validate-client-certificate validate-revocation="false">
      <identities>
        <identity subject="CN=legacy" issuer-subject="CN=Partner CA" />
        <identity   thumbprint = "A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1"  serial-number="0F"></identity>
      </identities>
    </validate-client-certificate>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""
API_ADDED = API.replace(
    """serial-number="0F"></identity>
""",
    """serial-number="0F"></identity>
        <identity   thumbprint = "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2"></identity>
""",
)

# Operation scope: everything inline on one line.
OPERATION = (
    '<policies><inbound><base /><validate-client-certificate><identities><identity thumbprint="'
    + OLD
    + '"/> <identity thumbprint="'
    + OTHER
    + '"/></identities></validate-client-certificate></inbound><backend><base /></backend>'
    "<outbound><base /></outbound><on-error><base /></on-error></policies>"
)
# The anchor follows <identities> with no whitespace, so the new identity follows the anchor so.
OPERATION_ADDED = OPERATION.replace(f'"{OLD}"/>', f'"{OLD}"/><identity thumbprint="{NEW}"/>')


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(GLOBAL, GLOBAL_ADDED, id="global"),
        pytest.param(PRODUCT, PRODUCT_ADDED, id="product-crlf-single-quotes-two-blocks"),
        pytest.param(API, API_ADDED, id="api-end-tag-extra-attributes"),
        pytest.param(OPERATION, OPERATION_ADDED, id="operation-inline"),
    ],
)
def test_add_then_remove_at_every_scope_is_byte_exact(before: str, after: str):
    added = add_thumbprint(before, OLD, NEW)

    assert added == after
    assert added.encode() == after.encode()
    assert add_thumbprint(added, OLD, NEW) == added  # idempotent
    assert remove_thumbprint(added, NEW) == before


def test_retiring_the_old_thumbprint_keeps_the_new_one_byte_exact():
    retired = remove_thumbprint(GLOBAL_ADDED, OLD)

    assert retired == GLOBAL.replace(OLD + '" />', NEW + '" />').replace(
        '<!-- callers pin: <identity thumbprint="' + NEW,
        '<!-- callers pin: <identity thumbprint="' + OLD,
    )
    assert [p.thumbprint for p in find_thumbprints(retired)] == [NEW]


def test_crlf_retire_removes_the_whole_line_in_both_blocks():
    retired = remove_thumbprint(PRODUCT_ADDED, OLD)

    assert retired == PRODUCT.replace(
        "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
    )
    assert "\n" not in retired.replace("\r\n", "")


def test_find_reports_each_identity_with_its_position_and_block():
    found = find_thumbprints(PRODUCT)

    assert [p.thumbprint for p in found] == [OTHER, OLD, OLD]
    assert found[0] == PinnedThumbprint(
        thumbprint=OTHER,
        offset=PRODUCT.index("<identity thumbprint='c3"),
        line=8,
        column=7,
        block_offset=PRODUCT.index("<validate-client-certificate"),
    )
    assert found[1].block_offset == found[0].block_offset
    assert found[2].block_offset == PRODUCT.rindex("<validate-client-certificate")
    assert found[2].line == 16


def test_find_ignores_identities_outside_a_block_comments_cdata_and_expressions():
    document = f"""<policies>
  <inbound>
    <!-- <validate-client-certificate><identities><identity thumbprint="{OTHER}" /></identities></validate-client-certificate> -->
    <set-body><![CDATA[<validate-client-certificate><identities><identity thumbprint="{OTHER}"/></identities></validate-client-certificate>]]></set-body>
    <set-variable name="t" value="@("<validate-client-certificate><identities><identity thumbprint=\\"{OTHER}\\"/>")" />
    <identities><identity thumbprint="{OTHER}" /></identities>
    <validate-client-certificate>
      <identities>
        <identity thumbprint="@(context.Variables.GetValueOrDefault<string>("pinned"))" />
        <identity thumbprint="{OLD}" />
      </identities>
    </validate-client-certificate>
  </inbound>
</policies>"""

    assert [p.thumbprint for p in find_thumbprints(document)] == [OLD]
    # The expression identity is an identity: OLD is not the block's last one.
    assert remove_thumbprint(document, OLD) == document.replace(
        f'\n        <identity thumbprint="{OLD}" />', ""
    )


def test_the_last_identity_of_a_block_is_never_removed():
    with pytest.raises(LastIdentityError) as caught:
        remove_thumbprint(GLOBAL, OLD)

    assert isinstance(caught.value, RotationError)
    assert caught.value.line == 13
    assert caught.value.offset == GLOBAL.index("<validate-client-certificate")
    assert "last identity" in str(caught.value)
    assert OLD in str(caught.value)


def test_the_last_identity_rule_is_checked_before_any_block_changes():
    """PRODUCT's first block keeps OTHER, its second would be empty: nothing changes at all."""
    with pytest.raises(LastIdentityError) as caught:
        remove_thumbprint(PRODUCT, OLD)

    assert caught.value.offset == PRODUCT.rindex("<validate-client-certificate")
    assert caught.value.line == 14


def test_thumbprints_match_case_insensitively():
    assert add_thumbprint(PRODUCT, OLD.upper(), NEW.lower()) == PRODUCT_ADDED
    assert add_thumbprint(PRODUCT_ADDED, OLD, NEW.upper()) == PRODUCT_ADDED
    assert add_thumbprint(GLOBAL, OLD.lower(), NEW.lower()) == GLOBAL_ADDED
    assert remove_thumbprint(GLOBAL_ADDED, NEW.lower()) == GLOBAL


def test_add_leaves_a_document_without_the_anchor_untouched():
    assert add_thumbprint(GLOBAL, OTHER, NEW) is GLOBAL
    assert remove_thumbprint(GLOBAL, OTHER) is GLOBAL


def test_add_skips_a_block_that_already_pins_the_new_thumbprint():
    """Only the block that lacks NEW gains it; a half-done earlier run is completed, not doubled."""
    half = PRODUCT.replace(
        "\t\t\t\t\t\t<identity thumbprint='c3c3",
        "\t\t\t\t\t\t<identity thumbprint='B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2'/>\r\n"
        "\t\t\t\t\t\t<identity thumbprint='c3c3",
    )
    done = add_thumbprint(half, OLD, NEW)

    assert [p.thumbprint for p in find_thumbprints(done)] == [NEW, OTHER, OLD, OLD, NEW]
    assert done == half.replace(
        "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n"
        "\t\t\t\t\t</identities>\r\n"
        "\t\t\t\t</validate-client-certificate>\r\n"
        "\t\t\t</otherwise>",
        "\t\t\t\t\t\t<identity thumbprint='a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'/>\r\n"
        "\t\t\t\t\t\t<identity thumbprint='b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2'/>\r\n"
        "\t\t\t\t\t</identities>\r\n"
        "\t\t\t\t</validate-client-certificate>\r\n"
        "\t\t\t</otherwise>",
    )


def test_non_ascii_text_before_the_edit_keeps_offsets_right():
    document = GLOBAL.replace("Invalid client certificate", "Zertifikat ungültig — ✗").replace(
        '"X-Ok"', '"X-Ök✓"'
    )

    added = add_thumbprint(document, OLD, NEW)

    assert added == GLOBAL_ADDED.replace(
        "Invalid client certificate", "Zertifikat ungültig — ✗"
    ).replace('"X-Ok"', '"X-Ök✓"')
    assert find_thumbprints(added)[0].offset == document.rindex(f'<identity thumbprint="{OLD}" />')
    assert remove_thumbprint(added, NEW) == document


@pytest.mark.parametrize(
    "thumbprint",
    ["", "A1" * 19, "A1" * 21, "G" * 40, " " + "A1" * 20, "A1" * 19 + "A:", None, 42],
)
def test_bad_thumbprints_are_named(thumbprint: object):
    for call in (
        lambda: add_thumbprint(GLOBAL, thumbprint, NEW),  # type: ignore[arg-type]
        lambda: add_thumbprint(GLOBAL, OLD, thumbprint),  # type: ignore[arg-type]
        lambda: remove_thumbprint(GLOBAL, thumbprint),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="not a thumbprint") as caught:
            call()
        assert repr(thumbprint) in str(caught.value)


def test_normalize_thumbprint_upper_cases():
    assert normalize_thumbprint("ab" * 20) == "AB" * 20


@pytest.mark.parametrize(
    ("document", "line", "column", "reason"),
    [
        ("<policies>\n  <inbound>\n  </outbound>\n</policies>", 3, 5, "mismatched tag"),
        ("<policies>\n  <inbound a=1 />\n</policies>", 2, 14, "not well-formed"),
        ("<policies>\n  <inbound>\n", 3, 1, "no element found"),
        ("", 1, 1, "no element found"),
        ("<policies>\n  <set-body>a & b</set-body>\n</policies>", 2, 16, "not well-formed"),
        ("<policies><!-- open\n</policies>", 1, 11, "unclosed token"),
        ('<policies>\n <v x="@(a(" />\n</policies>', 2, 8, "unterminated policy expression"),
        ("<policies>\n  <set-body>@{ return 1;</set-body>\n</policies>", 2, 13, "unterminated"),
        ("<policies></policies><policies/>", 1, 22, "junk after document element"),
    ],
)
def test_malformed_documents_name_the_position(document, line, column, reason):
    for call in (
        lambda: find_thumbprints(document),
        lambda: add_thumbprint(document, OLD, NEW),
        lambda: remove_thumbprint(document, OLD),
    ):
        with pytest.raises(PolicyDocumentError) as caught:
            call()
        assert isinstance(caught.value, ValueError)
        assert reason in caught.value.reason
        assert (caught.value.line, caught.value.column) == (line, column)
        assert f"line {line}, column {column}" in str(caught.value)


def test_a_dtd_is_refused():
    document = '<!DOCTYPE p [<!ENTITY e "x">]>\n<policies>&e;</policies>'

    with pytest.raises(PolicyDocumentError, match="DTD is not allowed"):
        find_thumbprints(document)


def test_a_document_that_is_not_text_is_a_type_error():
    with pytest.raises(TypeError, match="bytes"):
        find_thumbprints(GLOBAL.encode())  # type: ignore[arg-type]


# -- property: add then remove restores the document ----------------------------------------------

_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40)
_newline = st.sampled_from(["\n", "\r\n"])
_indent = st.sampled_from(["", " ", "  ", "    ", "\t", "\t\t"])
_quote = st.sampled_from(['"', "'"])
_close = st.sampled_from(["/>", " />", "  />", "></identity>"])
_filler = st.sampled_from(
    [
        "",
        "<base />",
        "<!-- <identity thumbprint='X' /> -->",
        "<set-body><![CDATA[<a b='>'/>]]></set-body>",
        '<set-variable name="v" value="@(context.Request.Headers.GetValueOrDefault("a", "<") + \'>\')" />',
        '<set-body>@{ var s = @"a""<b>"; return s; /* ) } */ }</set-body>',
        "<rate-limit calls='@(1 < 2 ? 5 : 10)' renewal-period=\"60\" />",
        "text with ü and ✓",
    ]
)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, str, str]:
    nl = draw(_newline)
    new = draw(_hex)
    n_blocks = draw(st.integers(1, 3))
    pinned = draw(st.lists(_hex, min_size=1, max_size=4, unique_by=str.upper))
    if new.upper() in {p.upper() for p in pinned}:
        new = "".join("0" if c != "0" else "1" for c in pinned[0])  # differs in every digit
        if new.upper() in {p.upper() for p in pinned}:  # pragma: no cover
            new = "F" * 40
    parts = ["<policies>", nl, draw(_indent), "<inbound>", draw(_filler)]
    for _ in range(n_blocks):
        indent = draw(_indent)
        parts += [nl, indent, '<validate-client-certificate validate-revocation="true">']
        parts += [nl, indent, draw(_indent), "<identities>"]
        ids = draw(st.lists(st.sampled_from(pinned), min_size=1, max_size=3))
        inline = draw(st.booleans())
        for thumb in ids:
            quote, close = draw(_quote), draw(_close)
            lead = draw(st.sampled_from(["", " "])) if inline else nl + indent + draw(_indent) * 2
            parts += [lead, f"<identity thumbprint={quote}{thumb}{quote}{close}"]
        parts += [nl, indent, "</identities>", draw(_filler)]
        parts += [nl, indent, "</validate-client-certificate>", draw(_filler)]
    parts += [nl, "</inbound>", nl, "</policies>", draw(st.sampled_from(["", nl]))]
    anchor = draw(st.sampled_from(pinned))
    return "".join(parts), anchor, new


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_add_then_remove_restores_the_document(case: tuple[str, str, str]):
    document, anchor, new = case

    added = add_thumbprint(document, anchor, new)
    found = find_thumbprints(added)

    assert add_thumbprint(added, anchor, new) == added
    assert remove_thumbprint(added, new) == document
    blocks_with_anchor = {
        p.block_offset for p in find_thumbprints(document) if p.thumbprint == anchor.upper()
    }
    assert len([p for p in found if p.thumbprint == new.upper()]) == len(blocks_with_anchor)


def test_expressions_that_are_not_xml_are_still_edited():
    """GLOBAL is rawxml: its expressions break a plain XML parser, yet the edit goes through."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415 (only this test needs it)

    with pytest.raises(ET.ParseError):
        ET.fromstring(GLOBAL)
    assert add_thumbprint(GLOBAL, OLD, NEW) == GLOBAL_ADDED


def test_xml_format_escapes_a_declaration_and_a_bom_are_kept():
    """The ``xml`` format escapes expressions; a declaration (even one naming another encoding,
    the text is already decoded) and a byte-order mark are copied through."""
    document = (
        '\ufeff<?xml version="1.0" encoding="utf-16"?>\n<policies>\n  <inbound>\n'
        '    <set-variable name="a" value="@(context.Request.Headers.GetValueOrDefault(&quot;a&quot;) &lt; &quot;b&quot;)" />\n'
        "    <validate-client-certificate>\n      <identities>\n"
        f'        <identity thumbprint="{OLD}" />\n'
        "      </identities>\n    </validate-client-certificate>\n  </inbound>\n</policies>\n"
    )

    added = add_thumbprint(document, OLD, NEW)

    assert added == document.replace(
        f'        <identity thumbprint="{OLD}" />\n',
        f'        <identity thumbprint="{OLD}" />\n        <identity thumbprint="{NEW}" />\n',
    )
    assert remove_thumbprint(added, NEW) == document
