# The OpsConductor image: one image for every process (`api`, `worker --queue Q`, `migrate`,
# `check`, `user …`); docker-compose.yml picks the command per service.
#
# Layout inside the image:
#   /opt/venv        the virtualenv with every dependency, and `opsconductor` on PATH
#   /app/opsconductor, /app/migrations, /app/alembic.ini
#                    the package and its migrations side by side: opsconductor/schema.py finds
#                    the migrations at the parent of the package directory, so the package is
#                    installed in editable mode from /app (a plain `pip install .` would put it
#                    in site-packages, away from migrations/, and `opsconductor migrate` would
#                    not find them).
#
# Build: docker build -t opsconductor:local .   (or `docker compose build`)

ARG PYTHON_IMAGE=python:3.11-slim

############################ builder ############################
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself, without touching the dependencies again (README.md: the metadata).
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY opsconductor ./opsconductor
RUN pip install --no-deps --editable /app \
    && python -m compileall -q /app/opsconductor /app/migrations

############################ runtime ############################
FROM ${PYTHON_IMAGE} AS runtime

# openssh-client: ssh/scp for operators debugging from inside a worker (asyncssh needs no
# binary); nmap: the discovery worker runs it through python-nmap. Not version-pinned: Debian
# security updates replace the exact versions, and a pin would then break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client nmap \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 opsconductor \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/opsconductor \
        --shell /usr/sbin/nologin opsconductor

# Same paths as in the builder: the venv's interpreter link and the editable install's path
# mapping (/app/opsconductor) are absolute. Owned by root: the service user cannot change code.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPSCONDUCTOR_ENV=production \
    OPSCONDUCTOR_API_HOST=0.0.0.0 \
    OPSCONDUCTOR_DATA_DIR=/home/opsconductor/.opsconductor

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Health checks are per service (the API answers /health, a worker does not listen), so they
# live in docker-compose.yml rather than here.
ENTRYPOINT ["opsconductor"]
CMD ["--help"]
