"""The API's OpenAPI 3.1 document, made from the route table and the pydantic models'
JSON schemas (served at ``GET /v1/openapi.json``; the docs' API reference is made from it).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from wechat_sdk.http.models import ErrorBody, Health, Readiness
from wechat_sdk.http.routes import API_ROUTES, Route

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_TITLE = "wechat-sdk gateway API"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(ErrorBody)}


#: what any route may answer when the store fails under it (one rule: the server's)
_STORE_UNAVAILABLE = "the store could not be used (store_unavailable: Redis unreachable, say)"


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    params += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in route.query.items()
    ]
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in route.headers.items()
    ]
    responses: dict[str, Any] = {
        str(status): {"description": "OK", "content": _json_content(model)}
        for status, model in route.responses.items()
    }
    responses["401"] = _error("no token, or a wrong one")
    if route.request is not None:
        responses["400"] = _error("the body is not valid: the message says what to change")
        responses["413"] = _error("the body is too large")
    elif route.query:
        responses["400"] = _error(
            "a query parameter is not valid (an account id no account can have), or is "
            "given twice: the message says which"
        )
    responses["503"] = _error(_STORE_UNAVAILABLE)
    if route.name == "send_message":
        responses["404"] = _error("the account is not running")
        responses["409"] = _error(
            "the reply window is closed (window_closed), or a request with this "
            "Idempotency-Key is under way (request_in_progress)"
        )
        responses["422"] = _error("the Idempotency-Key was used with another request")
        responses["502"] = _error("WeChat did not take the message (delivery_failed)")
        responses["503"] = _error(
            "the account is not logged in, or logged out while sending (account_not_ready), "
            "or the gateway is stopping (gateway_stopping); sent and sentFiles say what went "
            "out. Or, before anything is sent, " + _STORE_UNAVAILABLE
        )
    if route.name == "verify_code":
        responses["404"] = _error("the account is not running (account_not_running)")
        responses["409"] = _error(
            "the account's login asks for no number now (verify_code_not_asked), or its "
            "transport's never does (verify_code_not_supported: Wechaty puppets)"
        )
    if route.name in ("approve_pairing", "deny_pairing"):
        responses["404"] = _error("no live pairing request with that code (for that account)")
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "parameters": params,
        "responses": responses,
    }
    if route.request is not None:
        op["requestBody"] = {
            "required": not route.request_optional,
            "content": _json_content(route.request),
        }
    return op


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the HTTP API (the same dict each call: do not change it)."""
    try:
        version = importlib.metadata.version("wechat-sdk")
    except importlib.metadata.PackageNotFoundError:  # (run from a source tree)
        version = "0"
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    keys += [(Health, "serialization"), (Readiness, "serialization")]
    for route in API_ROUTES:
        if route.request is not None:
            keys.append((route.request, "validation"))
        keys += [(model, "serialization") for model in route.responses.values()]
    _, top = models_json_schema(keys, ref_template=_REF)
    paths: dict[str, Any] = {}
    for route in API_ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths["/v1/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": _error("no token, or a wrong one"),
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness: 200 while the gateway serves (no token)",
            "security": [],
            "responses": {"200": {"description": "OK", "content": _json_content(Health)}},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: 200 when the accounts this gateway runs are ready (no token)",
            "security": [],
            "responses": {
                "200": {"description": "ready", "content": _json_content(Readiness)},
                "503": {
                    "description": "not ready (a Readiness body); or " + _STORE_UNAVAILABLE,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_ref(Readiness), _ref(ErrorBody)]}
                        }
                    },
                },
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": _TITLE,
            "version": version,
            "description": "Send WeChat messages, see the accounts, approve pairing codes, "
            "give an iLink login the number the phone shows. "
            "Every /v1 route needs the header Authorization: Bearer <channels.wechat.api.token>.",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
