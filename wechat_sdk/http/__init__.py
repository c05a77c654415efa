"""The gateway's HTTP server: the health endpoints, the HTTP API (``docs/http-api.md``) and
the signed media links of a webhook agent. aiohttp is imported only by
:mod:`wechat_sdk.http.server` and :mod:`wechat_sdk.http.routes`, when a server starts."""
