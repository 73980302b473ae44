FROM alpine
RUN --mount=type=cache,from=localhost:5000/x,target=/c true
ONBUILD RUN x
HEALTHCHECK --interval=5s CMD true
