"""The devstack admin API (``/_devstack/…`` on the ARM server, bearer token required).

- ``GET /_devstack/faults``: active rules per server (``arm``, ``kv``).
- ``POST /_devstack/faults``: add a rule; JSON as ``FaultRule.from_json`` plus ``"server"``.
- ``DELETE /_devstack/faults[?server=arm|kv]``: remove rules.
- ``POST /_devstack/seed``: ``{"seed": n}`` re-seeds the probability draws of both servers.
- ``GET /_devstack/requests?server=arm|kv``: the request log; ``DELETE`` clears it.
"""

from __future__ import annotations

from devstack.faults import FaultInjector, FaultRule, RequestLog
from devstack.server import Request, Response, json_response

__all__ = ["AdminApi"]


def _error(status: int, message: str) -> Response:
    payload = {
        "error": {"code": "BadRequest", "message": message, "details": [], "additionalInfo": []}
    }
    return json_response(status, payload)


class AdminApi:
    """Serves the admin routes over the fault injectors and request logs of both servers."""

    def __init__(self, servers: dict[str, tuple[FaultInjector, RequestLog]]) -> None:
        self.servers = servers

    def _pick(self, request: Request, default: str | None) -> list[str] | Response:
        name = request.query.get("server", default)
        if name is None:
            return list(self.servers)
        if name not in self.servers:
            return _error(400, f"'server' must be one of: {', '.join(self.servers)}")
        return [name]

    def handle(self, request: Request) -> Response:
        """Route an admin request."""
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_devstack/faults"):
            rules = {n: [r.as_dict() for r in f.rules()] for n, (f, _) in self.servers.items()}
            return json_response(200, rules)
        if route == ("POST", "/_devstack/faults"):
            return self._add_fault(request)
        if route == ("POST", "/_devstack/seed"):
            try:
                seed = int((request.json() or {})["seed"])
            except (ValueError, KeyError, TypeError):
                return _error(400, 'body must be {"seed": <int>}')
            for faults, _ in self.servers.values():
                faults.seed(seed)
            return Response(204)
        names = self._pick(request, None)
        if isinstance(names, Response):
            return names
        if route == ("DELETE", "/_devstack/faults"):
            for name in names:
                self.servers[name][0].clear()
            return Response(204)
        if route == ("GET", "/_devstack/requests"):
            value = [
                {"server": name, "method": e.method, "path": e.path, "status": e.status}
                for name in names
                for e in self.servers[name][1].entries()
            ]
            return json_response(200, {"value": value})
        if route == ("DELETE", "/_devstack/requests"):
            for name in names:
                self.servers[name][1].clear()
            return Response(204)
        return _error(404, "no such admin route")

    def _add_fault(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        server = body.get("server", "arm")
        if server not in self.servers:
            return _error(400, f"'server' must be one of: {', '.join(self.servers)}")
        try:
            rule = FaultRule.from_json(body)
        except ValueError as exc:
            return _error(400, str(exc))
        self.servers[server][0].add_rule(rule)
        return json_response(201, {"server": server, **rule.as_dict()})
