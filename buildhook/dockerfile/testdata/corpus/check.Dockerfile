# check=skip=all
FROM alpine
# check=error=true
ARG X
