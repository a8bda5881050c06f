"""The site's deployment configuration, read from the environment once per process.

The pages, the loaders and the API routes all take it from here (`config()`), so a site process
builds `shared.config.Config` once, whatever runs first. (A Streamlit resource cache rather than
functools: the tests clear it to run the pages against another database.)

Which database: the public pages and the API routes read `Config.site_read_url` (the read
replica of SIGNALPROOF_SITE_DATABASE_URL when one is set) through read-only connections; only the
owner's settings page uses SIGNALPROOF_DATABASE_URL, the primary, read-write
(`loaders.primary_database_url`). Nothing a site process keeps for itself decides anything for
another one: several of them can run behind one reverse proxy (docs/deployment.md).
"""

import streamlit as st

from shared.config import Config


@st.cache_resource(show_spinner=False)
def config() -> Config:
    return Config()
