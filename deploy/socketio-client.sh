#!/bin/sh
# The Socket.IO browser client the waiting page loads (static/vendor/socket.io.min.js), from the npm
# registry: one pinned version, checked against its published integrity before it is used. The same
# script serves `make vendor` and the image build (deploy/Dockerfile), so both ship the same file.
#
#   deploy/socketio-client.sh services/intake/static/vendor/socket.io.min.js
set -eu
VERSION=4.8.4
INTEGRITY=sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA==

dest=${1:?usage: deploy/socketio-client.sh DEST_FILE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "socket.io-client@$VERSION" >/dev/null)
tarball="$tmp/socket.io-client-$VERSION.tgz"
got=$(node -e 'const c = require("crypto"), f = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"));' "$tarball")
if [ "$got" != "$INTEGRITY" ]; then
  echo "socket.io-client@$VERSION does not match its pinned integrity (got $got)" >&2
  exit 1
fi
tar xzf "$tarball" -C "$tmp"
mkdir -p "$(dirname "$dest")"
cp "$tmp/package/dist/socket.io.min.js" "$dest"
echo "socket.io-client@$VERSION -> $dest"
