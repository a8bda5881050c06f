"""The site's deployment configuration, read from the environment once per process.

The pages, the loaders and the API routes all take it from here (`config()`), so a site process
builds `shared.config.Config` once, whatever runs first. (A Streamlit resource cache rather than
functools: the tests clear it to run the pages against another database.)
"""

import streamlit as st

from shared.config import Config


@st.cache_resource(show_spinner=False)
def config() -> Config:
    return Config()
