# syntax=docker/dockerfile:1
# check=skip=all;error=true
# escape=`
ARG REGISTRY
FROM $REGISTRY/python:3.8
COPY a /a
# check=error=true
CMD python a
