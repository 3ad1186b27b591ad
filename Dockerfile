# clauditor core for the compose stack (`clauditor serve`; Envoy runs in its own container).
FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clauditor ./clauditor
RUN pip install --no-cache-dir . && useradd --system --uid 10001 clauditor \
    && mkdir -p /data && chown clauditor /data
USER clauditor
EXPOSE 50051 9091
CMD ["clauditor", "serve", "--grpc=0.0.0.0:50051", "--api=0.0.0.0:9091", "--db=/data/clauditor.db"]
