# syntax=docker/dockerfile:1
# The support server, mydiag-server, as a container image. Build it from the repository root:
#
#   docker build -f docker/server.Dockerfile -t mydiag-server .
#
# or with docker/server-compose.yml (the server and PostgreSQL 16; see docker/README.md).
# The image holds no secret: the data directory (database settings, the server's age
# identity, blobs) is the volume /data, made on the first start by the entrypoint, and the
# database password comes from the environment (PGPASSWORD) at run time.

# The build stage: the package and its server extra into a virtual environment.
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY bundle ./bundle
COPY collectors ./collectors
COPY privacy ./privacy
COPY recording ./recording
COPY report ./report
COPY server ./server
RUN python -m venv /opt/mydiag && /opt/mydiag/bin/pip install --no-cache-dir '.[server]'

# The image: the same Python, the virtual environment, and nothing of the build.
FROM python:3.12-slim-bookworm
ENV PATH=/opt/mydiag/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 mydiag \
    && useradd --system --uid 10001 --gid mydiag --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin mydiag \
    && mkdir -p /data && chown mydiag:mydiag /data && chmod 0700 /data
COPY --from=build /opt/mydiag /opt/mydiag
COPY docker/server-entrypoint.sh /usr/local/bin/mydiag-server-entrypoint
USER mydiag
WORKDIR /data
VOLUME ["/data"]
# The HTTP API and web pages (put TLS in front: a reverse proxy or load balancer).
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health', timeout=4).status != 200)"]
ENTRYPOINT ["mydiag-server-entrypoint"]
CMD ["mydiag-server", "run", "--data", "/data", "--listen", "0.0.0.0:8080"]
