#!/bin/sh
# Anchor for SIGNALPROOF_ANCHOR_COMMAND: post each checkpoint (one JSON line on stdin) to a chat
# channel through an incoming webhook: Slack, Discord, Mattermost and Matrix hookshot-style
# webhooks all accept a JSON body with a text field. The channel's history is then a public,
# timestamped list of heads the server cannot edit.
#
#   SIGNALPROOF_ANCHOR_WEBHOOK_URL=https://hooks.slack.com/services/…   (keep it secret)
#   SIGNALPROOF_ANCHOR_COMMAND=/opt/signalproof/examples/anchors/post-to-chat.sh
#
# Discord wants "content" instead of "text": set SIGNALPROOF_ANCHOR_WEBHOOK_FIELD=content.
set -eu
url=${SIGNALPROOF_ANCHOR_WEBHOOK_URL:?set SIGNALPROOF_ANCHOR_WEBHOOK_URL to the incoming webhook}
field=${SIGNALPROOF_ANCHOR_WEBHOOK_FIELD:-text}
line=$(cat)
[ -n "$line" ] || { echo "no checkpoint on stdin"; exit 2; }
# The checkpoint is JSON without newlines; quote it as a JSON string for the message text.
escaped=$(printf '%s' "$line" | sed 's/\\/\\\\/g; s/"/\\"/g')
body=$(printf '{"%s": "signalproof checkpoint: %s"}' "$field" "$escaped")
status=$(curl --silent --show-error --max-time 20 --output /dev/null --write-out '%{http_code}' \
    -H 'Content-Type: application/json' --data "$body" "$url")
case $status in
    2*) echo "posted (HTTP $status)" ;;
    *) echo "webhook answered HTTP $status"; exit 1 ;;
esac
