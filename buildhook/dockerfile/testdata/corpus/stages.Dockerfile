ARG TAG=3.8
FROM localhost:5000/python:${TAG:-x} AS b
FROM b
COPY --from=b /a /b
