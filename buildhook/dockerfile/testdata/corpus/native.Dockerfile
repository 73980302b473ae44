ARG REGISTRY=localhost:5000
ARG TAG=3.8
FROM scratch AS files
COPY a /a
FROM ${REGISTRY}/python:${TAG}
ARG TAG
ENV V=$TAG
LABEL v=$V
WORKDIR /app
COPY --from=files --chown=1:1 /a ./
USER 1
EXPOSE 80/tcp 8000-8002
VOLUME /data
ENTRYPOINT ["python"]
CMD app.py
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
