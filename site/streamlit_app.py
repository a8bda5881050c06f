"""signalproof's public site: one entry point, pages that are only UI (see app_pages/)."""

import streamlit as st

st.set_page_config(page_title="signalproof — track record", page_icon=":material/query_stats:", layout="wide")

pages = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("app_pages/trades.py", title="Trades", icon=":material/receipt_long:"),
    st.Page("app_pages/analytics.py", title="Analytics", icon=":material/analytics:"),
    st.Page("app_pages/methodology.py", title="Methodology", icon=":material/rule:"),
]
st.navigation(pages).run()
