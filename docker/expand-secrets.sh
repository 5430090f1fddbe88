#!/bin/sh
# For the images that are not ours (Hasura) or run no Node (MinIO): replaces each ${NAME}
# in an environment value with the content of $TENANTRY_SECRETS_DIR/NAME, written by the
# one-shot `secrets` service, then runs the command. Compose passes the references as
# $${NAME}. scripts/compose/expand-secrets.ts is the same rule for the Node services.
# No eval of values: a secret's content is inserted, never interpreted.
set -eu
dir=${TENANTRY_SECRETS_DIR:-/run/tenantry/secrets}

expand() {
  rest=$2
  out=
  while :; do
    case $rest in
      *'${'*'}'*)
        before=${rest%%'${'*}
        after=${rest#*'${'}
        secret=${after%%'}'*}
        rest=${after#*'}'}
        case $secret in
          '' | *[!A-Za-z0-9_]* | [0-9]*) echo "expand-secrets: $1 has a malformed reference \${$secret}" >&2; exit 1 ;;
        esac
        if [ ! -r "$dir/$secret" ]; then
          echo "expand-secrets: $1 refers to \${$secret}, but $dir/$secret does not exist (did the secrets service run?)" >&2
          exit 1
        fi
        out=$out$before$(cat "$dir/$secret")
        ;;
      *)
        out=$out$rest
        break
        ;;
    esac
  done
}

for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*\${.*/\1/p'); do
  # $name matched an identifier above, so this only reads the variable it names.
  eval "value=\${$name}"
  expand "$name" "$value"
  export "$name=$out"
done
exec "$@"
