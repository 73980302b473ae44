FROM --platform=$BUILDPLATFORM golang AS build
RUN <<EOF
echo hi
EOF
FROM scratch
COPY --from=build / /
