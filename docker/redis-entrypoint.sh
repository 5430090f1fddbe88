#!/bin/sh
# Redis's users live in an ACL file on the data volume: the default user (the platform's,
# with the password from $REDIS_PASSWORD_FILE, stored as its SHA-256 only) and each tenant's
# user, which the platform adds with ACL SETUSER and writes with ACL SAVE, so they survive
# a restart. The default user's line is (re)written at every start, so a password changed
# in .env takes effect; every other line is kept. Then the image's own entry point runs
# redis-server with the file (it also hands /data to the redis user).
set -eu
acl_file=${REDIS_ACL_FILE:-/data/users.acl}

if [ ! -r "${REDIS_PASSWORD_FILE:-}" ]; then
  echo "redis-entrypoint: REDIS_PASSWORD_FILE (${REDIS_PASSWORD_FILE:-unset}) is not readable (did the secrets service run?)" >&2
  exit 1
fi
# printf, not echo: the hash is of the password exactly, without a newline.
hash=$(printf '%s' "$(cat "$REDIS_PASSWORD_FILE")" | sha256sum | cut -d ' ' -f 1)
if [ ${#hash} -ne 64 ]; then
  echo "redis-entrypoint: could not hash the password" >&2
  exit 1
fi

tmp="$acl_file.tmp"
umask 077
printf 'user default on #%s ~* &* +@all\n' "$hash" > "$tmp"
if [ -f "$acl_file" ]; then
  grep -v '^user default ' "$acl_file" >> "$tmp" || true
fi
mv "$tmp" "$acl_file"

exec docker-entrypoint.sh redis-server --aclfile "$acl_file" "$@"
