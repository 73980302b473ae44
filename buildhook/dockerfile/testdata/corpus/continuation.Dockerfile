FROM a\
  AS b
COPY --from=0 . .
ADD --checksum=sha256:abc https://x /y
