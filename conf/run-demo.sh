#!/usr/bin/env bash
# make run: the demo with its own Redis and Postgres, all under build/run,
# reachable on loopback or unix sockets only. Ctrl-C stops everything.
set -euo pipefail

build=$1
nginx=$2
conf=$(cd "$(dirname "$0")" && pwd)
run=$build/run
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

mkdir -p "$run/logs" "$run/redis" "$run/pg"
ln -sfn "$conf/html" "$run/html"
chown postgres "$run/pg"

redis-server --port 0 --unixsocket "$run/redis.sock" --unixsocketperm 777 \
    --dir "$run/redis" --appendonly yes --save '' \
    --logfile "$run/logs/redis.log" &
redis=$!

stop() {
    kill "$redis" 2>/dev/null || true
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$run/pg/data" -m fast \
        stop >/dev/null 2>&1 || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# Postgres refuses to run as root: its data belong to the postgres user
if [ ! -f "$run/pg/data/PG_VERSION" ]; then
    runuser -u postgres -- "$pgbin/initdb" -D "$run/pg/data" -A trust \
        -U postgres >"$run/logs/initdb.log"
fi

runuser -u postgres -- "$pgbin/pg_ctl" -D "$run/pg/data" -w \
    -l "$run/pg/postgres.log" \
    -o "-p 54329 -c listen_addresses=127.0.0.1 -k $run/pg" start >/dev/null

psql="psql -q -h 127.0.0.1 -p 54329 -U postgres"
$psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'chat'" \
    | grep -q 1 || $psql -d postgres -c "CREATE DATABASE chat"
$psql -d chat -f "$conf/schema.sql"

for i in $(seq 50); do [ -S "$run/redis.sock" ] && break; sleep 0.1; done

echo "ngx_chat demo: http://127.0.0.1:8080/ (Ctrl-C stops it)"

"$nginx" -p "$run/" -c "$conf/nginx.conf" \
    -g "daemon off; load_module $build/ngx_chat_module.so;"
