#!/bin/sh
# Start redis-server with ACL users built from the password in a secret FILE.
#
# The plaintext password never enters an environment variable, a command line or a config file:
# the shell reads the file, pipes it through the builtin printf into sha256sum, and the ACL file
# holds only `#<sha256>`. Used by docker-compose.yml (redis service) and the dev Kubernetes
# overlay (copied there as k8s/overlays/dev/redis/redis-start.sh; a test keeps both identical).
#
# Settings (none secret):
#   REDIS_PASSWORD_FILE  secret file              (default /run/secrets/redis_password)
#   REDIS_USERNAME       the app's ACL user        (default app; `default` is reserved)
#   REDIS_ACL_KEYS       key/channel pattern       (default app:* = the app's REDIS_KEY_PREFIX)
#   REDIS_ACL_DIR        where users.acl is written (default /run/redis; tmpfs or emptyDir)
# Extra arguments are passed to redis-server.
set -eu

password_file="${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
username="${REDIS_USERNAME:-app}"
key_pattern="${REDIS_ACL_KEYS:-app:*}"
acl_dir="${REDIS_ACL_DIR:-/run/redis}"
acl_file="$acl_dir/users.acl"

fail() { echo "redis-start: $*" >&2; exit 1; }

[ -r "$password_file" ] || fail "REDIS_PASSWORD_FILE: $password_file is missing or unreadable"
[ "$username" != "default" ] || fail "REDIS_USERNAME: use a named user, 'default' only answers PING"

# Strip exactly one trailing newline, as the app does (`$(...)` alone would strip them all).
password=$(cat "$password_file"; printf x)
password=${password%x}
password=${password%"
"}
[ -n "$password" ] || fail "REDIS_PASSWORD_FILE: $password_file is empty"
hash=$(printf '%s' "$password" | sha256sum | cut -d ' ' -f 1)
unset password

umask 077
mkdir -p "$acl_dir"
{
  # Unauthenticated clients (health checks) may only PING.
  echo "user default on nopass resetkeys resetchannels -@all +ping"
  echo "user $username on #$hash resetkeys ~$key_pattern resetchannels &$key_pattern +@all -@dangerous"
} > "$acl_file.tmp"
mv "$acl_file.tmp" "$acl_file"
if [ "$(id -u)" = 0 ]; then
  # The official entrypoint drops to the redis user; let it read the ACL file.
  chown -R redis:redis "$acl_dir"
fi

exec docker-entrypoint.sh redis-server --aclfile "$acl_file" --save "" --appendonly no "$@"
