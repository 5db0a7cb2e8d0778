# One image, two commands: `hallmonitor run` (all-in-one) or the API/worker separately.
# Model weights are mounted at /models (never baked in) and verified against the manifest.
FROM python:3.11-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies layer first (cached while only the code changes).
COPY pyproject.toml README.md ./
RUN mkdir -p monitor pipelines api config \
    && touch monitor/__init__.py pipelines/__init__.py api/__init__.py config/__init__.py \
    && pip install . \
    && pip uninstall -y hallmonitor

# Then the project.
COPY monitor monitor
COPY pipelines pipelines
COPY api api
COPY config config
COPY models/manifest.yaml models/README.md models/
RUN pip install --no-deps .

RUN useradd --system --uid 10001 hallmonitor && mkdir -p /data && chown hallmonitor /data
USER hallmonitor
VOLUME ["/data", "/models"]
EXPOSE 8080
ENTRYPOINT ["hallmonitor"]
CMD ["run", "--config", "/config/campus.yaml", "--host", "0.0.0.0"]
