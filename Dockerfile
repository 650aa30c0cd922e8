# syntax=docker/dockerfile:1
# gitseal: the CLI and the in-cluster controller, one static binary on an empty (scratch) base.
#
#   docker build -t gitseal:latest .
#
# Stages:
#   builder  compiles a fully static binary (glibc linked in: -C target-feature=+crt-static) and
#            leaves it at /out/gitseal, next to Debian's CA bundle at the usual path.
#   binary   where the runtime stage takes /out/gitseal and the CA bundle from: the builder by
#            default. BINARY_FROM names another image with the same two files instead; gitseal's
#            own tests use that to build this Dockerfile offline with buildah, from a binary
#            compiled on the host (scripts/image), without pulling rust:1-bookworm.
#   runtime  (the last stage, the image) scratch + binary + CA bundle + passwd/group with the
#            nonroot user 65532. No shell, no package manager, nothing else.
ARG BINARY_FROM=builder

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --bin gitseal --target "$target" \
 && mkdir -p /out \
 && cp "target/$target/release/gitseal" /out/gitseal \
 && /out/gitseal --version

FROM ${BINARY_FROM} AS binary

FROM scratch
COPY deploy/image/passwd /etc/passwd
COPY deploy/image/group /etc/group
COPY --from=binary /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary /out/gitseal /usr/local/bin/gitseal
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gitseal"]
CMD ["controller"]
