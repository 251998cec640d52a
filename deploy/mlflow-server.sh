#!/usr/bin/env bash
# The team's MLflow server: runs in PostgreSQL, artifacts stored by the server itself (clients
# upload and download through it), every request behind MLflow's basic-auth app.
#
# One command for both places it runs: deploy/compose.yaml's `mlflow` service, and
# tests/test_team_topology.py, which starts it natively against a real PostgreSQL.
# Everything comes from the environment (compose.yaml lists it):
#   MLFLOW_BACKEND_STORE_URI       runs and experiments (PostgreSQL)
#   MLFLOW_AUTH_DATABASE_URI       users and permissions (PostgreSQL, its own database)
#   MLFLOW_AUTH_ADMIN_USERNAME     the admin created on the first start (MLflow reads both)
#   MLFLOW_AUTH_ADMIN_PASSWORD     at least 12 characters; ignored once the admin exists
#   MLFLOW_FLASK_SERVER_SECRET_KEY signs the auth app's CSRF tokens (same on every restart)
#   MLFLOW_ALLOWED_HOSTS           Host headers answered (DNS-rebinding protection)
#   MLFLOW_ARTIFACTS_DESTINATION   where artifacts are kept (a volume), default /data/artifacts
#   MLFLOW_AUTH_CONFIG_PATH        where the auth app's ini file is written, default /tmp/...
#   MLFLOW_HOST, MLFLOW_PORT, MLFLOW_WORKERS
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set it to the runs database, e.g. postgresql+psycopg://user:pass@host:5432/mlflow}"
: "${MLFLOW_AUTH_DATABASE_URI:?set it to the users database, e.g. postgresql+psycopg://user:pass@host:5432/mlflow_auth}"
: "${MLFLOW_AUTH_ADMIN_USERNAME:?set the admin user name}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set the admin password (12 characters or more)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set a long random secret (it signs the CSRF tokens of the auth app)}"
: "${MLFLOW_ALLOWED_HOSTS:?set the Host headers to answer, e.g. mlflow:5000,localhost:*}"

# The auth app reads its database from an ini file only; the file is written from the
# environment on every start, readable by this user alone (it holds a password). configparser
# would read a % (a URL-encoded character) as interpolation, hence %%.
export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/dlopt-mlflow-auth.ini}"
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
# Signed-in users read every experiment; whoever creates an experiment manages it.
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI//%/%%}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI

exec mlflow server \
  --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-/data/artifacts}" \
  --allowed-hosts "$MLFLOW_ALLOWED_HOSTS" \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}"
