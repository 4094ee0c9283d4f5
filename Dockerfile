# The lesson's image: one image for the producer API and the workers.
# The compose file picks the role with its `command`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change. Only
# what the server and the workers need, with the Redis store (the compose file's redis
# profile runs this image on redis://); not the simulation's libraries (sim/ is not copied).
COPY requirements.txt requirements-redis.txt ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-redis.txt

COPY queue_system ./queue_system

# Run as an unprivileged user; /data holds the SQLite database (a volume).
RUN useradd --create-home --uid 10001 queue \
    && mkdir /data \
    && chown queue /data
USER 10001

ENV HOST=0.0.0.0 \
    PORT=3000 \
    QUEUE_DB=/data/queue.db
EXPOSE 3000

# Asks the API's /health on $PORT; a worker container overrides or ignores it.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "queue_system", "health"]

CMD ["python", "-m", "queue_system", "serve"]
