"""The route a request matched, as its full path template (``/api/v2/generate/check/{id}``): what the rate limits
and the metrics key their figures by."""

from __future__ import annotations

from starlette.types import Scope


def route_template(scope: Scope) -> str | None:
    """The matched route's path template with its routers' prefixes; ``None`` when no route matched.

    A route knows only its path within the router that declared it, so the prefix is what the request's path has
    in front of that path filled in with this request's parameters (the route's own path when it cannot be told)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if not isinstance(template, str) or not template:
        return None
    path = str(scope.get("path", ""))
    try:
        concrete = template.format(**{name: str(value) for name, value in (scope.get("path_params") or {}).items()})
    except (KeyError, IndexError, ValueError):
        return template
    return path[: len(path) - len(concrete)] + template if path.endswith(concrete) else template
