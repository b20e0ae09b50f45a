# The keyless server image: `keyless serve --config /etc/keyless/server.yaml` under gunicorn.
#
# Mount two things (README, "Run in production"):
#   /etc/keyless/     your server.yaml and issuers.yaml; the image ships none that is active,
#                     only examples under /usr/share/keyless/examples/
#   /var/lib/keyless  the state directory (CA and log keys, log databases): a volume, so that
#                     replacing the container keeps the CA and the logs
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ca ca
COPY cli cli
COPY client client
COPY core core
COPY oidc oidc
COPY tlog tlog
COPY tsa tsa
COPY strictjson strictjson
COPY server server
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres,pkcs11]'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/keyless keyless \
 && chmod 0700 /var/lib/keyless
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/server.yaml config/issuers.yaml /usr/share/keyless/examples/
USER keyless
VOLUME ["/var/lib/keyless"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["keyless", "serve"]
CMD ["--config", "/etc/keyless/server.yaml"]
