# dlopt served on :8501 with the embedded defaults (SQLite + artifacts) in the /data volume.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DLOPT_HOME=/data

WORKDIR /app
RUN groupadd --gid 1000 dlopt \
    && useradd --create-home --uid 1000 --gid 1000 dlopt \
    && mkdir -p /data \
    && chown dlopt:dlopt /data

# The CPU build of torch first, so the pinned requirements below never pull CUDA wheels.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml constraints.txt README.md ./
COPY dlopt_core ./dlopt_core
COPY tracking ./tracking
COPY ui ./ui
RUN pip install --no-cache-dir -c constraints.txt .

COPY app.py ./
COPY pages ./pages
COPY .streamlit ./.streamlit
# The service commands deploy/compose.yaml runs (the app's, and the team MLflow server's).
COPY deploy/app.sh deploy/mlflow-server.sh ./deploy/

USER 1000:1000
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"]
CMD ["deploy/app.sh"]
