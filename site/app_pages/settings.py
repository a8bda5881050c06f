"""Settings (owner only): the password gate, then the bot's health, the kill switch, every
runtime setting, and closing or cancelling a trade by hand.

Nothing below the gate is drawn before login. Reading and writing here go through the
read-write owner functions of `loaders` (its own engine); the public pages never get it. Every change goes through
`shared.settings.change` or `shared.owner` (validated, guarded, logged publicly).
"""

import math
from datetime import datetime, timedelta

import sqlalchemy as sa
import streamlit as st

from shared import owner, settings as runtime
from shared.candles import INTERVALS
from shared.clock import utcnow
from shared.models import EntryMode, LatestPrice, Market, RuntimeSettings, Trade, TradeStatus
from shared.targets import StopRule
from track_record import auth, display, loaders
from track_record.forms import GROUPS, LABELS

URL = loaders.primary_database_url()  # never a read replica: the owner's writes, and reads that see them
config = loaders.config()
password_hash = config.owner_password_hash.get_secret_value() if config.owner_password_hash else None
idle = timedelta(minutes=config.owner_idle_minutes)
now = utcnow()
FLASH = "owner_flash"  # a confirmation to show after the rerun that follows a change
LOGIN_RESULT = "owner_login_result"  # what the last login attempt said (no secret in it)
PASSWORD_FIELD = "owner_password_field"  # emptied by the login check itself



def locked(problem: str) -> None:
    st.warning(f"**The settings page is locked:** {problem}.", icon=":material/lock:")
    st.markdown("""
To open it, whoever runs this site:
1. runs `signalproof hash-password` and types the owner password twice; it prints an argon2 hash;
2. sets `SIGNALPROOF_OWNER_PASSWORD_HASH` to that hash in the site's environment (or its `.env` file);
3. restarts the site.

The password itself is never stored anywhere.
""")


def check_password() -> None:
    """The login form's callback. It runs before the page is drawn again and empties the password
    field first: the typed password lives no longer than this check."""
    password = st.session_state.get(PASSWORD_FIELD, "")
    st.session_state[PASSWORD_FIELD] = ""
    if not password:
        st.session_state[LOGIN_RESULT] = "Type the owner password."
        return
    assert password_hash is not None
    moment = utcnow()
    # The connection's own address, or the client a trusted proxy names (site/server.py puts it
    # there; see track_record/proxies.py); None from localhost.
    address = st.context.ip_address
    attempt = auth.try_login(loaders.owner_engine(URL), password_hash, password,
                             client=address if isinstance(address, str) else None, now=moment)
    wait = math.ceil(attempt.wait_seconds)
    if attempt.outcome is auth.Outcome.OPENED:
        auth.login(st.session_state, now=moment)
    elif attempt.outcome is auth.Outcome.THROTTLED:
        st.session_state[LOGIN_RESULT] = (f"Too many failed attempts: wait {wait} s before the next try. This "
                                          "password was not checked.")
    else:
        later = f" After several failures each try must wait longer: the next one in {wait} s." if wait else ""
        st.session_state[LOGIN_RESULT] = f"Wrong password.{later}"


def login_form(expired: bool) -> None:
    if expired:
        st.info(f"Your session ended after {config.owner_idle_minutes} min without activity: log in again.",
                icon=":material/timer_off:")
    st.caption("For the bot's owner. The public track record is on the other pages.")
    with st.columns([2, 3])[0], st.form("login"):
        st.text_input("Owner password", type="password", key=PASSWORD_FIELD, max_chars=auth.MAX_PASSWORD_CHARS)
        st.form_submit_button("Log in", type="primary", on_click=check_password)
    if message := st.session_state.pop(LOGIN_RESULT, None):
        st.error(message, icon=":material/hourglass_top:" if message.startswith("Too many") else ":material/block:")


def flash(message: str) -> None:
    """Show `message` after the rerun that redraws the page with the new values."""
    st.session_state[FLASH] = message
    st.rerun()


# --- sections ------------------------------------------------------------------------------

def health(settings: RuntimeSettings, beat: dict[str, object] | None) -> None:
    st.subheader("Status", anchor=False)
    cols = st.columns(3)
    cols[0].metric("Auto-trading", "Paused" if settings.paused else "Running",
                   "new signals are skipped" if settings.paused else "new signals become trades",
                   delta_color="off", delta_arrow="off", border=True)
    last_tick = beat.get("last_tick_at") if beat else None
    cols[1].metric("Worker", display.ago(last_tick if isinstance(last_tick, datetime) else None, now),
                   f"pid {beat.get('pid')} on {beat.get('hostname')}" if beat and beat.get("pid") else "no heartbeat yet",
                   delta_color="off", delta_arrow="off", border=True)
    feed_poll = beat.get("feed_last_poll_at") if beat else None
    received = beat.get("feed_received", 0) if beat else 0
    cols[2].metric("Signal feed", "off" if not settings.signal_feed_url else f"{received} signal(s) received",
                   None if not settings.signal_feed_url else
                   f"last poll {display.ago(feed_poll if isinstance(feed_poll, datetime) else None, now)}",
                   delta_color="off", delta_arrow="off", border=True)
    display.freshness(beat)
    if beat and beat.get("last_error"):
        at = beat.get("last_error_at")
        st.caption(f"Last worker error ({display.ago(at if isinstance(at, datetime) else None, now)}):")
        st.text(str(beat["last_error"]))  # plain text: exchange error bodies are not markup
    if settings.signal_feed_url and beat and beat.get("feed_last_error"):
        st.caption("Last feed error:")
        st.text(str(beat["feed_last_error"]))


def confirmed_button(label: str, confirmation: str, key: str, *, primary: bool = False) -> bool:
    """A button that acts only with its confirmation ticked. After an action the page is redrawn
    with other keys (the kill switch flips, the trade is gone), so the next one needs a new tick."""
    confirm = st.checkbox(confirmation, key=f"confirm-{key}")
    if not st.button(label, key=f"button-{key}", type="primary" if primary else "secondary"):
        return False
    if not confirm:
        st.error("Tick the confirmation first: nothing was changed.", icon=":material/check_box_outline_blank:")
        return False
    return True


def kill_switch(settings: RuntimeSettings) -> None:
    st.subheader("Kill switch", anchor=False)
    if settings.paused:
        st.warning("Auto-trading is **paused**: new signals are recorded as skipped (\"paused\"). Open trades are "
                   "still followed to their exit.", icon=":material/pause_circle:")
        if confirmed_button("Resume auto-trading", "Yes, turn new signals into trades again", "resume", primary=True):
            loaders.set_paused(URL, False, now=now)
            flash("Auto-trading resumed: the worker takes new signals again from its next tick.")
    else:
        st.caption("Pausing skips every new signal (recorded as skipped, \"paused\") until you resume. Open trades "
                   "are still followed to their exit. The pause is shown publicly.")
        if confirmed_button("Pause auto-trading", "Yes, skip every new signal until I resume", "pause"):
            loaders.set_paused(URL, True, now=now)
            flash("Auto-trading paused: from the worker's next tick, new signals are skipped.")


def widget(key: str, current: str, widget_key: str) -> str:
    """The input for one setting, returning its value as text (what `settings set` would take)."""
    label, help_text = LABELS[key], f"{runtime.SETTINGS[key][1]} (`{key}`)"
    if key == "entry_mode":
        options = [m.value for m in EntryMode]
        value = st.selectbox(label, options, index=options.index(current), help=help_text, key=widget_key)
    elif key == "stop_after_tp":
        options = [rule.value for rule in StopRule]
        value = st.selectbox(label, options, index=options.index(current), help=help_text, key=widget_key)
    elif key == "candle_interval":
        options = list(INTERVALS)
        value = st.selectbox(label, options, index=options.index(current), help=help_text, key=widget_key)
    elif key == "markets":
        chosen = st.multiselect(label, [m.value for m in Market], default=current.split(","), help=help_text,
                                key=widget_key)
        value = ",".join(chosen)
    elif key in ("one_per_symbol_side", "futures_funding"):
        value = "true" if st.checkbox(label, value=current == "true", help=help_text, key=widget_key) else "false"
    elif key == "site_description":
        value = st.text_area(label, current, help=help_text, key=widget_key, max_chars=1000)
    else:
        value = st.text_input(label, current, help=help_text, key=widget_key)
    return value


def settings_form(group: str, keys: tuple[str, ...], values: dict[str, str], version: str) -> None:
    with st.form(f"settings-{group}"):
        # The version in the key redraws the inputs with the stored values after any change.
        columns = st.columns(2)
        typed = {}
        for n, key in enumerate(keys):
            with columns[n % 2]:
                typed[key] = widget(key, values[key], f"{key}@{version}")
        if group == "Trading":
            st.caption("Changes apply to trades opened from now on: a trade keeps the settings it was opened with. "
                       "The starting balance is the exception: it rescales the % returns and drawdowns of the whole "
                       "record.")
        submitted = st.form_submit_button(f"Save {group.lower()}", type="primary")
    if not submitted:
        return
    changes = {key: text for key, text in typed.items() if text != values[key]}
    errors = []
    for key, text in changes.items():
        try:
            runtime.parse_setting(key, text)
        except ValueError as exc:  # SettingError, and anything else a parser may say of odd input
            errors.append(f"{LABELS[key]}: {exc}")
    if errors:  # nothing is saved unless the whole form is valid
        st.error("Nothing was saved:\n\n" + "\n\n".join(f"- {display.plain(e)}" for e in errors), icon=":material/error:")
        return
    applied = loaders.change_settings(URL, changes, now=now)
    if not applied:
        st.info("Nothing changed.", icon=":material/info:")
        return
    shown = ", ".join(f"{key} {runtime.public_value(key, old) or '(empty)'} → {runtime.public_value(key, new) or '(empty)'}"
                      for key, old, new in applied)
    flash(f"Saved: {shown}. The worker applies it from its next tick; the change is logged publicly.")


def trade_label(trade: Trade, latest: LatestPrice | None) -> str:
    price = f"latest {latest.price}" if latest is not None else "no price stored yet"
    entry = trade.entry_price if trade.entry_price is not None else trade.signal_entry
    return f"#{trade.id} {trade.symbol} {trade.side} {trade.market} {trade.status} · entry {entry} · {price}"


def manual_actions() -> None:
    st.subheader("Close or cancel a trade", anchor=False)
    active = loaders.owner_trades(URL)
    if not active:
        st.info("No open or pending trade.", icon=":material/info:")
        return
    st.caption("An open trade closes at the latest price the worker stored (\"closed manually\", fees and P/L as "
               "usual); a pending limit entry is cancelled. Both are shown publicly.")
    by_id = {trade.id: (trade, latest) for trade, latest in active}
    chosen = st.selectbox("Trade", list(by_id), format_func=lambda trade_id: trade_label(*by_id[trade_id]))
    trade, latest = by_id[chosen]
    try:
        if trade.status == TradeStatus.OPEN.value:
            if latest is None:
                st.info(f"No price for {trade.symbol} is stored yet: it can be closed after the worker's next price "
                        "update.", icon=":material/info:")
                return
            confirmation = (f"Yes, close trade {trade.id} at {latest.price} (latest stored price, "
                            f"{display.ago(latest.updated_at, now)}; slippage applies)")
            # The price is part of the key: a new price needs a new tick of the box, and the
            # close happens at the price confirmed or not at all.
            key = f"close-{trade.id}-{latest.price}-{latest.updated_at.isoformat()}"
            if confirmed_button("Close trade at the latest price", display.plain(confirmation), key, primary=True):
                message = loaders.close_trade(URL, trade.id, now=now, confirmed_price=latest.price)
                flash(f"Done: {message}.")
        elif trade.entry_mode != EntryMode.LIMIT.value:
            st.info("A market entry waits only for its start candle, which decides it: it cannot be cancelled.",
                    icon=":material/info:")
        elif confirmed_button("Cancel pending trade", f"Yes, cancel pending trade {trade.id}", f"cancel-{trade.id}",
                              primary=True):
            message = loaders.cancel_trade(URL, trade.id, now=now)
            flash(f"Done: {message}.")
    except owner.ActionRefused as refused:
        st.error(display.plain(str(refused)), icon=":material/error:")


def recent_changes() -> None:
    st.subheader("Recent changes (public)", anchor=False)
    changes = loaders.recent_changes(URL, limit=20)
    if changes.empty:
        st.caption("No change yet.")
        return
    st.dataframe(changes, hide_index=True, width="stretch", column_config={
        "time": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "actor": st.column_config.TextColumn("By"), "label": st.column_config.TextColumn("Change"),
    })


# --- the page --------------------------------------------------------------------------------

st.title("Owner settings", anchor=False)
problem = auth.hash_problem(password_hash)
if problem:
    locked(problem)
    st.stop()

try:
    status = auth.session_status(st.session_state, now=now, idle=idle)
    if status != "active":
        login_form(expired=status == "expired")
        st.stop()

    top = st.columns([5, 1], vertical_alignment="center")
    top[0].caption(f"Logged in as the owner. The session ends after {config.owner_idle_minutes} min without an action.")
    if top[1].button("Log out", key="logout", icon=":material/logout:", width="stretch"):
        auth.logout(st.session_state)
        st.rerun()
    if message := st.session_state.pop(FLASH, None):
        st.success(display.plain(message), icon=":material/check_circle:")

    view = loaders.owner_view(URL)
    settings, values, version, beat = view.settings, view.values, view.version, view.beat

    health(settings, beat)
    kill_switch(settings)
    st.subheader("Runtime settings", anchor=False)
    for tab, (group, keys) in zip(st.tabs(list(GROUPS)), GROUPS.items()):
        with tab:
            settings_form(group, keys, values, version)
    manual_actions()
    recent_changes()
except (sa.exc.OperationalError, sa.exc.ProgrammingError):
    # e.g. the database is down, or its schema predates this version of the site.
    st.error("The settings cannot be read or saved right now (database error). If you run this site: check the "
             "database, and run `signalproof db upgrade` after upgrading signalproof.", icon=":material/error:")
