"""The public site as served: the Streamlit app (streamlit_app.py) and, beside it, plain HTTP
routes (track_record/api.py). `signalproof site` runs `streamlit run site/server.py`, which
finds `app` below and serves both with uvicorn (`--server.port`/`--server.address` apply)."""

import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import Route

from shared.config import proxy_networks
from track_record import api, deployment, ledger_api
from track_record.proxies import PeerAddress

app = st.App(
    "streamlit_app.py",
    # The public read-only API (README "Public API"): GET only, each route answers 405 to anything else.
    routes=[Route(api.TRADES_CSV, api.trades_csv, methods=["GET"]),
            Route(api.SIGNALS_CSV, api.signals_csv, methods=["GET"]),
            *(Route(path, endpoint, methods=["GET"]) for path, endpoint in ledger_api.ROUTES)],
    # The connection's real address for the owner login's per-address wait (see proxies.py).
    middleware=[Middleware(PeerAddress, trusted=proxy_networks(deployment.config().trusted_proxies))],
)
