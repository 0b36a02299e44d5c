# syntax=docker/dockerfile:1
#
# scopegate container image: a static binary on distroless, running as a
# non-root user.
#
#   docker build -t scopegate --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -e SCOPEGATE_DATABASE_URL=... -p 8080:8080 scopegate          # serve
#   docker run --rm -e SCOPEGATE_DATABASE_URL=... scopegate migrate               # one-shot
#   docker run --rm -e SCOPEGATE_DATABASE_URL=... scopegate keys create --client-key app --name App
#
# Docker cannot run on the machines this project is developed and tested on,
# so this file is kept deliberately simple and is not exercised by CI; the
# same build command runs in CI without Docker (go build ./cmd/scopegate).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so they stay cached while the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/scopegate ./cmd/scopegate

# distroless/static: CA certificates and tzdata, no shell, no package
# manager; the :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/scopegate /usr/local/bin/scopegate
COPY configs/demo /etc/scopegate/demo
# Traffic on 8080; the admin listener (/healthz, /readyz, /metrics) on 9090.
# The admin listener binds all interfaces here (its default is loopback) so
# Prometheus and the orchestrator can reach it: publish 9090 only to them.
ENV SCOPEGATE_LISTEN_ADDR=:8080 \
    SCOPEGATE_ADMIN_ADDR=:9090
EXPOSE 8080 9090 9001
USER nonroot:nonroot
# There is no curl in a distroless image: `scopegate healthcheck` GETs
# /readyz on SCOPEGATE_ADMIN_ADDR (on loopback) and exits 0 on 200, else 1,
# so a gateway that cannot reach its database past SCOPEGATE_STALE_TTL (and
# answers 503) is unhealthy. (`scopegate healthcheck --live` asks /healthz,
# process up, for orchestrators that restart on a failed check.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/scopegate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/scopegate"]
CMD ["serve"]
