#!/bin/sh
# Send a WeChat message from a shell script: the gateway's HTTP API (channels.wechat.api).
# WECHAT_API_TOKEN is channels.wechat.api.token; WECHAT_API its address (port: api.port).
set -eu
API="${WECHAT_API:-http://127.0.0.1:8788}"
TEXT="${1:-The nightly backup finished.}"

# the JSON body, built by a tool that quotes it right (the text may hold quotes)
BODY=$(python3 -c 'import json, sys; print(json.dumps({"to": sys.argv[1], "text": sys.argv[2]}))' \
  "${WECHAT_TO:-wxid_owner}" "$TEXT")

# Idempotency-Key: if this script runs again for the same day, nothing is sent twice
# (--write-out: a newline after the answer, so curl's own error line on a failure starts
# a line of its own)
curl --fail-with-body --silent --show-error --write-out '\n' \
  -H "Authorization: Bearer $WECHAT_API_TOKEN" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: backup-$(date +%F)" \
  -d "$BODY" \
  "$API/v1/messages"
