"""The public site as served: the Streamlit app (streamlit_app.py) and, beside it, plain HTTP
routes (track_record/api.py). `signalproof site` runs `streamlit run site/server.py`, which
finds `app` below and serves both with uvicorn (`--server.port`/`--server.address` apply)."""

import streamlit as st
from starlette.routing import Route

from track_record import api

app = st.App("streamlit_app.py", routes=[Route(api.TRADES_CSV, api.trades_csv, methods=["GET"])])
