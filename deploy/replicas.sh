#!/usr/bin/env bash
# Several replicas of the explorer on this machine behind nginx with sticky sessions.
#   usage: deploy/replicas.sh [N]        (N replicas, default 2; about one per CPU core)
# Settings (environment):
#   LISTEN        where nginx listens: a port or address:port (default: $PORT, else 8080)
#   REPLICA_PORT  first replica's port; replica i listens on 127.0.0.1:REPLICA_PORT+i (default 8601)
#   RUN_DIR       nginx's prefix (config, pid, logs/, tmp/) and the replicas' logs (default: a new
#                 temporary directory)
#   PYTHON        the interpreter with requirements.txt installed (default python3)
#   NGINX_BIN     the nginx binary (default nginx; NGINX itself is a variable nginx reads)
#   STREAMLIT_SERVER_COOKIE_SECRET  shared by all replicas (default: a random one per start)
#   OMP_NUM_THREADS  torch threads per replica (default: the cores divided by N, at least 1)
# Runs in the foreground until one process stops or it receives SIGTERM/SIGINT; then it stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2}
listen=${LISTEN:-${PORT:-8080}}
base=${REPLICA_PORT:-8601}
run=${RUN_DIR:-$(mktemp -d -t explorer-replicas.XXXXXX)}
python=${PYTHON:-python3}
nginx=${NGINX_BIN:-nginx}
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [N]  (N: the number of replicas, at least 1)" >&2
  exit 2
fi
if ! command -v "$nginx" >/dev/null; then
  echo "$nginx not found: install the distribution's nginx (apt-get install nginx) or set NGINX_BIN" >&2
  exit 2
fi
mkdir -p "$run/logs" "$run/tmp"

# Streamlit signs its cookies with this secret (its session-middleware cookie, st.login's cookie);
# its configuration asks for the same one on every replica, so that a browser moved to another
# replica (its replica died) is still recognised there.
if [ -z "${STREAMLIT_SERVER_COOKIE_SECRET:-}" ]; then
  STREAMLIT_SERVER_COOKIE_SECRET=$("$python" -c 'import secrets; print(secrets.token_hex(32))')
fi
export STREAMLIT_SERVER_COOKIE_SECRET
# The cores shared out: torch would otherwise start one thread per core in every replica.
cores=$(nproc 2>/dev/null || echo 1)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-1}  # one malloc arena per replica (app/malloc.py)

pids=()
stop() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait || true
}
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

upstreams=()
for ((i = 0; i < n; i++)); do
  port=$((base + i))
  "$python" -m streamlit run app --server.address 127.0.0.1 --server.port "$port" \
    --server.headless true --browser.gatherUsageStats false > "$run/logs/replica-$port.log" 2>&1 &
  pids+=($!)
  upstreams+=("127.0.0.1:$port")
done

# nginx starts once every replica answers its health check (at most 5 minutes).
"$python" - "${upstreams[@]}" <<PY
import sys, time, urllib.request
pids, deadline = "${pids[*]}".split(), time.time() + 300
for replica in sys.argv[1:]:
    while True:
        try:
            with urllib.request.urlopen(f"http://{replica}/_stcore/health", timeout=2):
                break
        except OSError:
            for pid in pids:  # a replica that exited (a zombie until this script reaps it)
                with open(f"/proc/{pid}/stat") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] in "ZX":
                        sys.exit(f"a replica stopped; see the logs in $run/logs")
            if time.time() > deadline:
                sys.exit(f"replica {replica} did not start; see its log in $run/logs")
            time.sleep(0.5)
PY

deploy/nginx-conf.sh "$listen" "${upstreams[@]}" > "$run/nginx.conf"
"$nginx" -e stderr -p "$run" -c "$run/nginx.conf" -g 'daemon off;' &
pids+=($!)
echo "explorer: $n replicas behind nginx on $listen (run directory $run)"
wait -n  # the first process to stop ends them all
