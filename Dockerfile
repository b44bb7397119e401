# somcal: the API, the dashboard and the CLI in one image.
#
#   docker build -t somcal .
#   docker run -p 8000:8000 -v somcal-var:/app/var somcal somcal quickstart --host 0.0.0.0
#       (the whole job on the bundled mock and SQLite, then serves http://127.0.0.1:8000)
#   docker compose up                  (with PostgreSQL: see docker-compose.yml)
#
# The image installs the wheel built from this tree, not an editable checkout: what runs here
# is exactly what `pip install somcal-*.whl` gives anyone (tests/app/test_packaging.py builds
# the same wheel and runs `somcal db upgrade` and `somcal quickstart` from it).

# ---- the wheel
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY som ./som
COPY app ./app
RUN pip wheel --no-deps --wheel-dir /dist .

# ---- the service
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    # Compiled numba kernels and matplotlib's font cache go to directories the service user
    # owns (the installed package stays read-only).
    NUMBA_CACHE_DIR=/home/somcal/.cache/numba \
    MPLCONFIGDIR=/home/somcal/.cache/matplotlib \
    SOMCAL_HOST=0.0.0.0 \
    SOMCAL_PORT=8000

RUN groupadd --system --gid 10001 somcal \
    && useradd --system --uid 10001 --gid somcal --create-home --home-dir /home/somcal somcal

WORKDIR /app
# Dependencies first, read from pyproject.toml, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -m venv "$VIRTUAL_ENV" \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself (its migrations, static files and mock data ride inside the wheel);
# /app keeps only the working directory the SQLite default and quickstart write to.
COPY --from=wheel /dist /tmp/dist
RUN pip install /tmp/dist/somcal-*.whl \
    && rm -rf /tmp/dist pyproject.toml README.md \
    && mkdir -p /app/var \
    && chown somcal:somcal /app/var

USER somcal
# Compile the numba kernels once at build time instead of on the first request.
RUN python -c "import numpy as np; from som import SOM; \
X = np.random.default_rng(0).normal(size=(200, 3)); \
SOM(3, 4, n_epochs=1, random_state=0).fit(X).assign(X)"

VOLUME ["/app/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health' % os.environ.get('SOMCAL_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
CMD ["somcal", "serve"]
