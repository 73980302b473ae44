# kiln on an empty base: one static binary, a passwd entry for its user,
# the build host's CA bundle (for HTTPS upstream registries) and /data.
#
# The build context is not this repository but a directory that
# deploy/docker-build.sh assembles, so the image builds with no network and
# no base image to pull:
#
#   kiln                 static binary (CGO_ENABLED=0 go build ./cmd/kiln)
#   rootfs/etc/...       passwd, group and ssl/certs/ca-certificates.crt
#   data/                empty; becomes /data, owned by the kiln user
#
# Usage: deploy/docker-build.sh [TAG] (see deploy/README.md).
FROM scratch

COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
COPY kiln /kiln

# Not root; the uid owns /data, so a fresh named volume is writable too
# (Docker copies the image's /data ownership into it).
USER 65532:65532
ENV KILN_DATA=/data
VOLUME /data
EXPOSE 5000

# Scratch has no shell or curl: the binary probes its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/kiln", "healthcheck"]

# kiln serve reads /config.yml if mounted there, else --config FILE (append
# it to `docker run ... IMAGE serve --config /etc/kiln/config.yml`), else
# its built-in defaults; KILN_ADDR and KILN_DATA override the file.
ENTRYPOINT ["/kiln"]
CMD ["serve"]
