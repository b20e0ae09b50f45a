# The keyless server image: `keyless serve --config /etc/keyless/server.yaml` under gunicorn.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ca ca
COPY cli cli
COPY oidc oidc
COPY tlog tlog
COPY server server
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/keyless keyless
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/server.yaml config/issuers.yaml /etc/keyless/
USER keyless
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["keyless", "serve"]
CMD ["--config", "/etc/keyless/server.yaml"]
