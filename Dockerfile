# One image for every role; the command picks it (db upgrade, worker, serve, run).
# docker-compose.yml runs it; tests/test_compose.py checks this file (base image, user,
# entrypoint, what is copied) and runs the compose topology as plain processes.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies from the lock file only: every version pinned, every file checked against
# its hash (requirements.lock, made from pyproject.toml by pip-compile: docs/operations.md;
# tests/test_compose.py fails when a dependency is missing from it). The lock also holds
# the build backend, so the package itself installs with no resolving and no build
# isolation: nothing unpinned is downloaded. Every dependency ships a manylinux wheel, so
# no compiler is needed. The build tree is removed once installed.
COPY requirements.lock /src/
RUN pip install --no-cache-dir --require-hashes -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY aggregator /src/aggregator
RUN pip install --no-cache-dir --no-deps --no-build-isolation /src && rm -rf /src

# Not root. The only place the service writes is data/ (the SQLite file of `run`);
# with PostgreSQL it writes nothing to disk.
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin aggregator \
    && mkdir -p /app/data \
    && chown aggregator:aggregator /app/data
WORKDIR /app
# The bundled sample config, so the image runs alone (`docker run -p 8080:8080 IMAGE`
# serves the samples like the README's first command); compose mounts ./config over it.
COPY config /app/config
USER aggregator

EXPOSE 8080
ENTRYPOINT ["aggregator"]
CMD ["run", "--host", "0.0.0.0"]
