#!/bin/sh
# Container health probe (the Dockerfile's HEALTHCHECK runs exactly this):
# healthy when /health answers 200 (healthy or degraded) within 5 s.
exec curl -fsS --max-time 5 "http://127.0.0.1:${API_PORT:-8000}/health" -o /dev/null
