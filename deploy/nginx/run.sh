#!/bin/sh
# The proxy's entry point: nginx with the stack's configuration (NGINX_CONFIG), reloaded
# whenever the addresses behind the name `service` change. Open-source nginx resolves an
# upstream's names only when it loads its configuration; reloading is graceful (running
# requests finish on the old workers), and keeps the upstream connections alive between
# requests, which resolving a name per request (a variable in grpc_pass) cannot.
config="${NGINX_CONFIG:-/etc/nginx/digits/nginx.conf}"
addresses() { getent ahostsv4 service | awk '{ print $1 }' | sort -u; }

# nginx refuses to start while the name resolves to nothing (no healthy replica yet).
until [ -n "$(addresses)" ]; do sleep 1; done
known="$(addresses)"
nginx -e stderr -c "$config" -g 'daemon off;' &
nginx_pid=$!
# SIGQUIT (the stack's stop signal) and SIGTERM: nginx's graceful stop.
trap 'kill -QUIT "$nginx_pid" 2>/dev/null' QUIT TERM INT
while kill -0 "$nginx_pid" 2>/dev/null; do
  sleep 2 & wait $!
  now="$(addresses)"
  if [ -n "$now" ] && [ "$now" != "$known" ]; then
    echo "proxy: replicas now $(echo $now)" >&2
    nginx -e stderr -c "$config" -s reload && known="$now"
  fi
done
wait "$nginx_pid"
