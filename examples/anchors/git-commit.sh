#!/bin/sh
# Anchor for SIGNALPROOF_ANCHOR_COMMAND: append each checkpoint (one JSON line on stdin) to a
# file in a git repository, commit it, and push when the repository has a remote. A public
# repository (GitHub, Codeberg, your own) then holds every head with a date the server does not
# control: a rewritten ledger cannot match a head pushed there earlier.
#
#   SIGNALPROOF_ANCHOR_COMMAND='/opt/signalproof/examples/anchors/git-commit.sh /var/lib/signalproof/heads'
#
# The repository must exist (git init, a remote with push access by key, user.name/user.email).
# Exit status and the first output line are recorded on the checkpoint; the worker kills the
# script after SIGNALPROOF_ANCHOR_TIMEOUT_SECONDS.
set -eu
repo=${1:?usage: git-commit.sh REPOSITORY_DIRECTORY [FILE]}
file=${2:-checkpoints.jsonl}
line=$(cat)
[ -n "$line" ] || { echo "no checkpoint on stdin"; exit 2; }
cd "$repo"
printf '%s\n' "$line" >> "$file"
git add -- "$file"
seq=$(printf '%s' "$line" | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
git commit --quiet -m "signalproof checkpoint seq ${seq:-?}" -- "$file"
if [ -n "$(git remote)" ]; then
    git push --quiet 2>&1 | head -n 1
    echo "committed and pushed seq ${seq:-?}"
else
    echo "committed seq ${seq:-?} (no remote configured)"
fi
