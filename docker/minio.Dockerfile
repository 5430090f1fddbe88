# MinIO's images left Docker Hub and quay.io keeps only frozen tags that miss later
# fixes, so the S3 server is built from a pinned source version, the same one
# scripts/install-native-deps.sh builds for the native stack and the tests.
FROM golang:1.25-bookworm AS build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
RUN CGO_ENABLED=0 go install github.com/minio/minio@${MINIO_VERSION}

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 minio \
 && mkdir /data && chown minio /data
COPY --from=build /go/bin/minio /usr/local/bin/minio
# Resolves the $${S3_ACCESS_KEY}-style references compose passes (the secrets service's files).
COPY docker/expand-secrets.sh /usr/local/bin/expand-secrets
USER minio
EXPOSE 9000
ENTRYPOINT ["/bin/sh", "/usr/local/bin/expand-secrets", "minio"]
CMD ["server", "/data", "--address", ":9000", "--console-address", ":9001"]
