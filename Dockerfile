# memoryd container image: Debian 12, two stages, runs as a non-root user.
# CI keeps this file honest without a Docker engine: it installs the same
# package lists and runs the same scripts (see scripts/test.sh, stage "deploy").

# ---- build stage ------------------------------------------------------------
FROM debian:12-slim AS build
COPY config/container/build-packages.txt /tmp/
RUN apt-get update \
 && grep -v '^#' /tmp/build-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY src src
COPY config config
COPY scripts/container-build.sh scripts/
RUN scripts/container-build.sh /opt/memoryd

# ---- runtime stage ----------------------------------------------------------
FROM debian:12-slim
COPY config/container/runtime-packages.txt /tmp/
RUN apt-get update \
 && grep -v '^#' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/memoryd --shell /usr/sbin/nologin memoryd \
 && mkdir -p /var/lib/memoryd \
 && chown memoryd:memoryd /var/lib/memoryd
COPY --from=build /opt/memoryd/bin/memoryd /usr/local/bin/memoryd
COPY --from=build /opt/memoryd/etc/memoryd/memoryd.conf.example /etc/memoryd/memoryd.conf.example
COPY scripts/healthcheck.sh /usr/local/bin/memoryd-healthcheck
USER memoryd
WORKDIR /var/lib/memoryd
# In a container memoryd must listen on all interfaces; publish the port
# deliberately (docker-compose.yml binds it to 127.0.0.1 on the host).
ENV API_HOST=0.0.0.0 \
    API_PORT=8000 \
    DATA_DIR=/var/lib/memoryd \
    LOG_FORMAT=json
EXPOSE 8000
VOLUME ["/var/lib/memoryd"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/memoryd-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/memoryd"]
