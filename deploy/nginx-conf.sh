#!/usr/bin/env bash
# Print deploy/nginx.conf.template filled in: nginx listening on LISTEN, in front of the replicas.
#   usage: deploy/nginx-conf.sh LISTEN HOST:PORT [HOST:PORT ...] > RUN_DIR/nginx.conf
#   e.g.   deploy/nginx-conf.sh 8080 10.0.0.11:8501 10.0.0.12:8501
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 LISTEN HOST:PORT [HOST:PORT ...]" >&2
  exit 2
fi
listen=$1
shift
servers=""
for replica in "$@"; do
  # a replica that failed 3 times within 10 s is skipped for 10 s (its browsers go elsewhere)
  servers+="        server ${replica} max_fails=3 fail_timeout=10s;"$'\n'
done
template="$(dirname "$0")/nginx.conf.template"
while IFS= read -r line; do
  case "$line" in
    @SERVERS@) printf '%s' "$servers" ;;
    *) printf '%s\n' "${line//@LISTEN@/$listen}" ;;
  esac
done < "$template"
