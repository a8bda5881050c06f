"""signalproof's public site: one entry point, pages that are only UI (see app_pages/)."""

import sqlalchemy as sa
import streamlit as st

from shared.database import SchemaMissing, require_schema
from track_record import display, loaders, scope

st.set_page_config(page_title="signalproof — track record", page_icon=":material/query_stats:", layout="wide")

pages = {
    "Track record": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("app_pages/trades.py", title="Trades", icon=":material/receipt_long:"),
        st.Page("app_pages/analytics.py", title="Analytics", icon=":material/analytics:"),
        st.Page("app_pages/signals.py", title="Signals", icon=":material/list_alt:"),
        st.Page("app_pages/methodology.py", title="Methodology", icon=":material/rule:"),
        st.Page("app_pages/verify.py", title="Verify", icon=":material/verified:"),
    ],
    # Behind a password (see app_pages/settings.py); the only page that can write.
    "Owner": [st.Page("app_pages/settings.py", title="Settings", icon=":material/lock:")],
}
# One trade's page, `/trade?trade=ID`, reached from the trade tables: not an entry of the menu.
pages["Track record"].append(st.Page("app_pages/trade.py", title="Trade", icon=":material/candlestick_chart:",
                                     url_path="trade", visibility="hidden"))
navigation = st.navigation(pages)
display.phone_layout()
# The period and live-only switch stay in the address on every page (a page switch drops query
# parameters; track_record/scope.py puts them back from the session).
scope.current()
try:
    require_schema(loaders.engine(loaders.database_url()))
except (SchemaMissing, sa.exc.OperationalError):
    # Never a traceback for visitors: say what is wrong, not how it failed.
    st.error("The track record is not available right now (its database cannot be read). "
             "If you run this site: check SIGNALPROOF_DATABASE_URL (and SIGNALPROOF_SITE_DATABASE_URL, if "
             "set) and run `signalproof db upgrade`.",
             icon=":material/error:")
    st.stop()
if loaders.demo_mode():
    st.warning("**DEMO — simulated market.** The candles are a random walk and the signals come from a simulated "
               "bot, both generated on this machine: nothing here is anyone's real record.", icon=":material/science:")
# The site verifies its own ledger on every data version (track_record/self_check.py): when the
# chain is broken, every page says so first, naming the first bad entry.
display.ledger_banner(loaders.ledger_state(loaders.database_url(), for_banner=True))
navigation.run()
