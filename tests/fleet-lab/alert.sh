#!/bin/sh
# The fleet lab's alert channel (type "command"): one line per alert in ALERTS,
#   EVENT|JOB|SCHEDULED|RUN_ID|NODE|EPOCH|SUBJECT|MESSAGE (the message on one line)
# Usage: alert.sh ALERTS NODE
msg=$(head -c 4000 | tr '\n|' '  ')
echo "$CRONWARDEN_EVENT|$CRONWARDEN_JOB|$CRONWARDEN_SCHEDULED|$CRONWARDEN_RUN_ID|$2|$(date +%s.%N)|$CRONWARDEN_SUBJECT|$msg" >>"$1"
