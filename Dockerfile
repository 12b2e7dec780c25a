# For users who build with a Docker engine. `make image` builds the same image (both binaries,
# static, non-root 65532) without one, from hack/image.
FROM golang:1.26 AS build
ARG VERSION=0.1.0-dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/tracestream/tracestream/internal/version.Version=${VERSION}" -o /out/manager ./cmd/manager && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/tracestream/tracestream/internal/version.Version=${VERSION}" -o /out/exporter ./cmd/exporter

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /manager
COPY --from=build /out/exporter /exporter
USER 65532:65532
ENTRYPOINT ["/manager"]
