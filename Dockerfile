# The Airbyte source image: `docker build -t source-pipedrive-sync:0.1.0 .` at the repo root.
# Airbyte runs it as `spec`, `check`, `discover` or `read` after the entrypoint.
FROM rust:1.95-bookworm AS builder
# DuckDB (bundled C++) and aws-lc (TLS) compile from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pipedrive-sync

FROM debian:bookworm-slim
# rustls verifies Pipedrive's certificate against the system's roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/pipedrive-sync /usr/local/bin/pipedrive-sync
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/pipedrive-sync airbyte"
ENTRYPOINT ["/usr/local/bin/pipedrive-sync", "airbyte"]
LABEL io.airbyte.name="source-pipedrive-sync" \
      io.airbyte.version="0.1.0"
