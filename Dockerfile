# One image for every lossforge service: the API (`lossforge serve`), the Ray head and the Ray
# workers (same Python, same Ray, same lossforge on both sides of a task).
# On Linux, torch==2.13.0 from PyPI is the CUDA build, which GPU workers need.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libseccomp: the sandbox's system-call filter.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libseccomp2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/lossforge
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY discovery ./discovery
COPY evaluator ./evaluator
COPY sandbox ./sandbox
# The hf stage's data sets and LoRA, and PostgreSQL (the compose archive).
RUN pip install '.[hf,postgres]'

RUN useradd --create-home --uid 1000 lossforge && mkdir -p /data && chown lossforge /data
USER lossforge
WORKDIR /data
ENV LOSSFORGE_DATA_DIR=/data/data \
    LOSSFORGE_CACHE_DIR=/data/cache

EXPOSE 8000
ENTRYPOINT ["lossforge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
