"""APIs, operations, products and the policy documents of every scope, through the unmodified
``azure-mgmt-apimanagement`` client against the ARM stand-in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement.models import (
    ApiCreateOrUpdateParameter,
    OperationContract,
    PolicyContract,
    ProductContract,
)

from devstack.scene import sdk_client
from devstack.stack import Devstack

POLICY = "policy"
# what rawxml must keep byte for byte: an expression with => < > and quotes, a multi-statement
# expression with braces and a string holding a ")", a comment, CRLF line ends
RAW = (
    "<policies>\r\n  <inbound>\r\n    <base />\r\n"
    "    <!-- partner callers: pinned by thumbprint -->\r\n"
    '    <set-variable name="caller" value="@(context.Request.Headers.GetValueOrDefault(\'x\', '
    '"").Split(\',\').Where(s => s.Length < 40 && s != "a)b").FirstOrDefault())" />\r\n'
    '    <set-header name="x-when" exists-action="override"><value>@{ var d = '
    'new Dictionary<string, int> { { "n", 1 } }; return d["n"] > 0 ? "yes" : "no"; }</value>'
    "</set-header>\r\n  </inbound>\r\n  <backend><forward-request /></backend>\r\n</policies>"
)


def _ok(value: str) -> PolicyContract:
    return PolicyContract(value=value, format="rawxml")


def _etag(_pipeline: Any, model: Any, headers: Any) -> tuple[Any, str]:
    return model, headers["ETag"]


@dataclass(frozen=True)
class Scope:
    """One policy scope's SDK calls, bound to a client, a resource group and a service."""

    name: str
    get: Any
    put: Any
    delete: Any
    entity_tag: Any
    listing: Any
    rtype: str
    suffix: str


@pytest.fixture(name="client")
def _client(devstack: Devstack):
    return sdk_client(devstack)


@pytest.fixture(name="where")
def _where(devstack: Devstack) -> tuple[str, str]:
    return devstack.resource_group, devstack.apim_services[0]


@pytest.fixture(name="parents")
def _parents(client, where):
    """An API ``echo`` with operation ``get-echo``, and a product ``starter``."""
    rg, svc = where
    client.api.begin_create_or_update(
        rg, svc, "echo", ApiCreateOrUpdateParameter(display_name="Echo", path="echo")
    ).result()
    client.api_operation.create_or_update(
        rg, svc, "echo", "get-echo",
        OperationContract(display_name="Get echo", method="GET", url_template="/echo"),
    )  # fmt: skip
    client.product.create_or_update(rg, svc, "starter", ProductContract(display_name="Starter"))


def _scopes(client, rg: str, svc: str) -> dict[str, Scope]:
    ops = ("echo", "get-echo")
    return {
        "global": Scope(
            "global",
            lambda **kw: client.policy.get(rg, svc, POLICY, **kw),
            lambda p, **kw: client.policy.create_or_update(rg, svc, POLICY, p, **kw),
            lambda **kw: client.policy.delete(rg, svc, POLICY, **kw),
            lambda **kw: client.policy.get_entity_tag(rg, svc, POLICY, **kw),
            lambda: list(client.policy.list_by_service(rg, svc)),
            "Microsoft.ApiManagement/service/policies",
            "/policies/policy",
        ),
        "product": Scope(
            "product",
            lambda **kw: client.product_policy.get(rg, svc, "starter", POLICY, **kw),
            lambda p, **kw: client.product_policy.create_or_update(
                rg, svc, "starter", POLICY, p, **kw
            ),
            lambda **kw: client.product_policy.delete(rg, svc, "starter", POLICY, **kw),
            lambda **kw: client.product_policy.get_entity_tag(rg, svc, "starter", POLICY, **kw),
            lambda: list(client.product_policy.list_by_product(rg, svc, "starter")),
            "Microsoft.ApiManagement/service/products/policies",
            "/products/starter/policies/policy",
        ),
        "api": Scope(
            "api",
            lambda **kw: client.api_policy.get(rg, svc, "echo", POLICY, **kw),
            lambda p, **kw: client.api_policy.create_or_update(rg, svc, "echo", POLICY, p, **kw),
            lambda **kw: client.api_policy.delete(rg, svc, "echo", POLICY, **kw),
            lambda **kw: client.api_policy.get_entity_tag(rg, svc, "echo", POLICY, **kw),
            lambda: client.api_policy.list_by_api(rg, svc, "echo").value,
            "Microsoft.ApiManagement/service/apis/policies",
            "/apis/echo/policies/policy",
        ),
        "operation": Scope(
            "operation",
            lambda **kw: client.api_operation_policy.get(rg, svc, *ops, POLICY, **kw),
            lambda p, **kw: client.api_operation_policy.create_or_update(
                rg, svc, *ops, POLICY, p, **kw
            ),
            lambda **kw: client.api_operation_policy.delete(rg, svc, *ops, POLICY, **kw),
            lambda **kw: client.api_operation_policy.get_entity_tag(rg, svc, *ops, POLICY, **kw),
            lambda: client.api_operation_policy.list_by_operation(rg, svc, *ops).value,
            "Microsoft.ApiManagement/service/apis/operations/policies",
            "/apis/echo/operations/get-echo/policies/policy",
        ),
    }


@pytest.fixture(name="scope", params=["global", "product", "api", "operation"])
def _scope(request, client, where, parents) -> Scope:
    return _scopes(client, *where)[request.param]


def _wire(devstack):
    return [(e.method, e.status) for e in devstack.request_log.arm.entries()]


class TestApis:
    def test_create_is_a_finished_lro_then_get_and_update(self, devstack, client, where):
        """begin_create_or_update: one PUT (201, provisioningState Succeeded), no polling; the
        second PUT is a 200; get carries the ETag."""
        rg, svc = where
        devstack.request_log.clear()

        created = client.api.begin_create_or_update(
            rg, svc, "echo",
            ApiCreateOrUpdateParameter(display_name="Echo", path="echo", service_url="https://e.test"),
        ).result()  # fmt: skip
        assert _wire(devstack) == [("PUT", 201)]
        updated = client.api.begin_create_or_update(
            rg, svc, "echo", ApiCreateOrUpdateParameter(display_name="Echo 2", path="echo")
        ).result()
        got, etag = client.api.get(rg, svc, "echo", cls=_etag)

        assert created.provisioning_state == "Succeeded"
        assert created.id == devstack.service_id(svc) + "/apis/echo"
        assert created.type == "Microsoft.ApiManagement/service/apis"
        assert created.service_url == "https://e.test"
        assert (updated.display_name, got.display_name, got.path) == ("Echo 2", "Echo 2", "echo")
        assert _wire(devstack)[1:] == [("PUT", 200), ("GET", 200)]
        assert etag.startswith('"')
        assert client.api.get_entity_tag(rg, svc, "echo") is True

    def test_missing_api_is_404(self, client, where):
        """get of an API that does not exist: ResourceNotFoundError."""
        with pytest.raises(ResourceNotFoundError):
            client.api.get(*where, "nope")

    def test_create_without_path_is_400(self, client, where):
        """An API needs displayName and path."""
        with pytest.raises(HttpResponseError) as caught:
            client.api.begin_create_or_update(
                *where, "bad", ApiCreateOrUpdateParameter(display_name="Bad")
            ).result()

        assert caught.value.status_code == 400

    def test_list_pages_with_top_and_next_link(self, devstack, client, where):
        """list_by_service with top=2 follows the absolute nextLink through 5 APIs: 3 GETs."""
        rg, svc = where
        for i in range(5):
            client.api.begin_create_or_update(
                rg, svc, f"api-{i}", ApiCreateOrUpdateParameter(display_name=f"A{i}", path=f"p{i}")
            ).result()
        devstack.request_log.clear()

        names = [a.name for a in client.api.list_by_service(rg, svc, top=2)]

        assert names == [f"api-{i}" for i in range(5)]
        assert _wire(devstack) == [("GET", 200)] * 3

    def test_list_filter(self, client, where):
        """$filter on displayName."""
        rg, svc = where
        for name in ("orders", "billing"):
            client.api.begin_create_or_update(
                rg, svc, name, ApiCreateOrUpdateParameter(display_name=name.title(), path=name)
            ).result()

        found = client.api.list_by_service(rg, svc, filter="displayName eq 'Billing'")

        assert [a.name for a in found] == ["billing"]


class TestOperationsAndProducts:
    def test_operation_create_get_and_list_by_api(self, client, where, parents):
        """Operations belong to their API: list_by_api shows only that API's, paged."""
        rg, svc = where
        client.api.begin_create_or_update(
            rg, svc, "other", ApiCreateOrUpdateParameter(display_name="Other", path="other")
        ).result()
        for i in range(3):
            client.api_operation.create_or_update(
                rg, svc, "echo", f"op-{i}",
                OperationContract(display_name=f"Op {i}", method="POST", url_template=f"/o{i}"),
            )  # fmt: skip
        client.api_operation.create_or_update(
            rg, svc, "other", "op-x",
            OperationContract(display_name="X", method="GET", url_template="/x"),
        )  # fmt: skip

        got = client.api_operation.get(rg, svc, "echo", "op-1")
        listed = [o.name for o in client.api_operation.list_by_api(rg, svc, "echo", top=2)]

        assert (got.method, got.url_template) == ("POST", "/o1")
        assert got.id.endswith("/apis/echo/operations/op-1")
        assert got.type == "Microsoft.ApiManagement/service/apis/operations"
        assert listed == ["get-echo", "op-0", "op-1", "op-2"]
        assert [o.name for o in client.api_operation.list_by_api(rg, svc, "other")] == ["op-x"]

    def test_operation_of_a_missing_api_is_404(self, client, where):
        """An operation under an API that does not exist: 404, nothing stored."""
        with pytest.raises(ResourceNotFoundError):
            client.api_operation.create_or_update(
                *where, "nope", "op",
                OperationContract(display_name="Op", method="GET", url_template="/"),
            )  # fmt: skip

    def test_product_create_get_list(self, client, where):
        """201 then 200, get with the defaults APIM fills in, list_by_service."""
        rg, svc = where
        client.product.create_or_update(rg, svc, "gold", ProductContract(display_name="Gold"))
        second, etag = client.product.create_or_update(
            rg, svc, "gold", ProductContract(display_name="Gold!"), cls=_etag
        )

        got = client.product.get(rg, svc, "gold")

        assert (second.display_name, got.display_name, got.state) == (
            "Gold!",
            "Gold!",
            "notPublished",
        )
        assert etag
        assert [p.name for p in client.product.list_by_service(rg, svc)] == ["gold"]


class TestPolicies:
    def test_rawxml_round_trip_is_byte_for_byte(self, devstack, where, scope):
        """PUT rawxml (201) then GET rawxml: the text as written, CRLF, comment, => and <."""
        devstack.request_log.clear()

        written, etag = scope.put(_ok(RAW), cls=_etag)
        got, got_etag = scope.get(format="rawxml", cls=_etag)

        assert got.value == RAW
        assert got.format == "rawxml"
        assert got_etag == etag
        assert written.id == devstack.service_id(where[1]) + scope.suffix
        assert (got.id, got.type, got.name) == (written.id, scope.rtype, "policy")
        # global: the default policy exists, so it is an update
        assert _wire(devstack)[0] == ("PUT", 200 if scope.name == "global" else 201)

    def test_default_format_xml_escapes_inside_expressions(self, scope):
        """GET without a format (the SDK sends xml): expressions escaped, markup untouched."""
        scope.put(_ok(RAW))

        got = scope.get()

        assert got.format == "xml"
        assert "s =&gt; s.Length &lt; 40 &amp;&amp; s != &quot;a)b&quot;" in got.value
        assert "new Dictionary&lt;string, int&gt;" in got.value
        assert "<!-- partner callers: pinned by thumbprint -->\r\n" in got.value
        assert "=>" not in got.value

    def test_comments_and_cdata_hold_no_expressions(self, scope):
        """An ``@(`` inside an XML comment or CDATA section is text, not escaped in xml."""
        raw = (
            "<policies><inbound><base /><!-- @(a => b) --><set-body><![CDATA[@(x => 1)]]>"
            "</set-body></inbound></policies>"
        )
        scope.put(_ok(raw))

        assert scope.get().value == raw

    def test_an_xml_put_reads_back_raw(self, scope):
        """What is PUT as xml (escaped expressions) reads back unescaped as rawxml."""
        scope.put(_ok(RAW))
        escaped = scope.get().value

        scope.put(PolicyContract(value=escaped, format="xml"))

        assert scope.get(format="rawxml").value == RAW
        assert scope.get().value == escaped

    def test_list_returns_the_scope_document_in_xml(self, scope):
        """list_by_* returns the one document of the scope (xml format; no ETag in lists)."""
        scope.put(_ok(RAW))

        listed = scope.listing()

        assert len(listed) == 1
        assert listed[0].type == scope.rtype
        assert "=&gt;" in listed[0].value

    def test_if_match_current_stale_and_star(self, devstack, scope):
        """If-Match is optional; the current ETag or * updates; a stale one is a 412 without
        Retry-After, and nothing changes."""
        _, first = scope.put(_ok(RAW), cls=_etag)
        _, second = scope.put(_ok(RAW.replace("a)b", "c")), if_match=first, cls=_etag)
        devstack.request_log.clear()

        with pytest.raises(HttpResponseError) as caught:
            scope.put(_ok("<policies />"), if_match=first)

        assert caught.value.status_code == 412
        assert "Retry-After" not in caught.value.response.headers  # type: ignore[union-attr]
        assert _wire(devstack) == [("PUT", 412)]
        assert scope.get(format="rawxml").value == RAW.replace("a)b", "c")
        assert scope.entity_tag(cls=lambda _p, _m, headers: headers["ETag"]) == second
        scope.put(_ok(RAW), if_match="*")
        assert scope.get(format="rawxml").value == RAW

    def test_concurrent_write_fault_moves_the_etag(self, devstack, scope):
        """The fault injector's concurrent write lands before the PUT: its If-Match loses."""
        _, etag = scope.put(_ok(RAW), cls=_etag)
        devstack.faults_arm.concurrent_write("*" + scope.suffix, method="PUT")

        with pytest.raises(HttpResponseError) as caught:
            scope.put(_ok("<policies />"), if_match=etag)

        assert caught.value.status_code == 412
        assert scope.get(format="rawxml").value == RAW

    def test_delete_needs_if_match_then_is_gone(self, scope):
        """DELETE with the ETag; then get is a 404 and the list is empty."""
        _, etag = scope.put(_ok(RAW), cls=_etag)

        scope.delete(if_match=etag)

        with pytest.raises(ResourceNotFoundError):
            scope.get(format="rawxml")
        assert scope.listing() == []

    def test_malformed_document_is_400(self, scope):
        """A document that is not well-formed <policies> XML is refused."""
        for bad in ("<policies><inbound></policies>", "<policy />", "not xml"):
            with pytest.raises(HttpResponseError) as caught:
                scope.put(_ok(bad))
            assert caught.value.status_code == 400

    @pytest.mark.parametrize("name", ["product", "api", "operation"])
    def test_missing_parent_is_404(self, client, where, name):
        """A policy under a product, API or operation that does not exist: 404 on PUT and GET."""
        scope = _scopes(client, *where)[name]

        with pytest.raises(ResourceNotFoundError):
            scope.put(_ok(RAW))
        with pytest.raises(ResourceNotFoundError):
            scope.get(format="rawxml")

    def test_operation_policy_needs_the_operation(self, client, where, parents):
        """The API exists but the operation does not: 404."""
        with pytest.raises(ResourceNotFoundError):
            client.api_operation_policy.create_or_update(*where, "echo", "nope", POLICY, _ok(RAW))


def test_everything_persists_and_reloads(tmp_path):
    """APIs, operations, products and every scope's policy survive a restart, ETags included."""
    with Devstack.start(tmp_path, ephemeral=False) as stack:
        client = sdk_client(stack)
        where = (stack.resource_group, stack.apim_services[0])
        client.api.begin_create_or_update(
            *where, "echo", ApiCreateOrUpdateParameter(display_name="Echo", path="echo")
        ).result()
        client.api_operation.create_or_update(
            *where, "echo", "get-echo",
            OperationContract(display_name="Get echo", method="GET", url_template="/echo"),
        )  # fmt: skip
        client.product.create_or_update(*where, "starter", ProductContract(display_name="S"))
        before = {}
        for name, scope in _scopes(client, *where).items():
            _, etag = scope.put(_ok(RAW.replace("caller", name)), cls=_etag)
            # each PUT's save wrote its policy row and the ETag counter, nothing else
            assert stack.state.saved_rows == 2
            before[name] = etag

    with Devstack.start(tmp_path, ephemeral=False) as stack:
        client = sdk_client(stack)
        where = (stack.resource_group, stack.apim_services[0])
        for name, scope in _scopes(client, *where).items():
            got, etag = scope.get(format="rawxml", cls=_etag)
            assert (got.value, etag) == (RAW.replace("caller", name), before[name])
        assert [o.name for o in client.api_operation.list_by_api(*where, "echo")] == ["get-echo"]
        assert client.product.get(*where, "starter").display_name == "S"
        assert [a.name for a in client.api.list_by_service(*where)] == ["echo"]
