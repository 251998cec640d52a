#!/usr/bin/env bash
# The dashboard. One command for the image (the Dockerfile's CMD, deploy/compose.yaml's `app`
# service) and tests/test_team_topology.py, which runs it natively. Where runs are stored comes
# from the environment: MLFLOW_TRACKING_URI (+ MLFLOW_TRACKING_USERNAME / _PASSWORD) and
# DLOPT_OPTUNA_STORAGE for a team's servers, else the embedded SQLite files under DLOPT_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m streamlit run app.py \
  --server.address "${DLOPT_ADDRESS:-0.0.0.0}" \
  --server.port "${DLOPT_PORT:-8501}" \
  --server.headless true
