ARG REGISTRY
FROM $REGISTRY/python:3.8
# check=skip=JSONArgsRecommended
COPY a /a
CMD python a
