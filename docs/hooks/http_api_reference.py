"""mkdocs hook: fills ``<!-- http-api-reference -->`` with the HTTP API's reference, made
from its OpenAPI document (wechat_sdk.http.openapi) at build time, so it cannot drift."""

from __future__ import annotations

from typing import Any

from wechat_sdk.http.openapi import openapi_document

MARKER = "<!-- http-api-reference -->"


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f'`"{v}"`' for v in schema["enum"])
    if "const" in schema:
        return f'`"{schema["const"]}"`'
    return str(schema.get("type", "any"))


def _fields(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        text = str(prop.get("description", "")).replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | {text} |")
    return rows


def reference_markdown() -> str:
    doc = openapi_document()
    out: list[str] = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            out += [f"### `{method.upper()} {path}`", "", op["summary"] + ".", ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | description |", "| --- | --- | --- |"]
                out += [
                    f"| `{p['name']}` | {p['in']} | {p.get('description', '')} |" for p in params
                ]
                out.append("")
            body = op.get("requestBody")
            if body is not None:
                schema = body["content"]["application/json"]["schema"]
                optional = "" if body.get("required") else " (optional)"
                out += [f"Body{optional}: {_type(schema)}", ""]
            out += ["| status | answer |", "| --- | --- |"]
            for status, response in op["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                shape = _type(content["schema"]) if "schema" in content else ""
                out.append(f"| {status} | {response['description']}: {shape} |")
            out.append("")
    out += ["### Bodies", ""]
    for name, schema in doc["components"]["schemas"].items():
        out += [f"#### {name}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        out += [*_fields(schema), ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, reference_markdown())
    return markdown
