"""Test stand-in for AuthenticationMiddleware (the project has no database): ``X-Test-User: 42``
makes ``request.user`` an authenticated user with ``pk == 42``."""

from __future__ import annotations

from typing import Any


class User:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = self.id = pk


class Anonymous:
    is_authenticated = False
    pk = id = None


class TestUserMiddleware:
    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        raw = request.headers.get("X-Test-User")
        request.user = User(int(raw)) if raw and raw.isdigit() else Anonymous()
        return self.get_response(request)
