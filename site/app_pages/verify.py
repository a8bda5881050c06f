"""Verify: the ledger's head, how far this site has verified it, how late signals reached it,
and how to check all of it yourself without trusting this server."""

from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from track_record import display, loaders

URL = loaders.database_url()
PLACEHOLDER_SITE = "https://<this site>"

st.title("Verify", anchor=False)
st.caption("Every signal, trade and settings change is an entry in a hash-chained public ledger. "
           "Each entry's hash covers the one before, so no past entry can be changed, removed or "
           "reordered without breaking every hash after it.")


def site_address() -> str:
    """This site's own address as the visitor's browser sees it (a placeholder when unknown)."""
    try:
        url = st.context.url
    except Exception:  # an older runtime or no browser session (tests): say where it goes
        return PLACEHOLDER_SITE
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return PLACEHOLDER_SITE
    return f"{parts.scheme}://{parts.netloc}"


state = loaders.ledger_state(URL)
st.subheader("The ledger's head", anchor=False)
if state is None:
    display.empty("The ledger cannot be read right now.")
elif state.head is None:
    display.empty("The ledger is empty: nothing has been recorded yet.")
else:
    left, middle, right = st.columns(3)
    left.metric("Head (seq)", f"{state.head.seq:,}")
    middle.metric("Verified through (seq)", f"{state.verified_through:,}")
    # The time of day large, its date under it: a whole timestamp does not fit the card.
    right.metric("Head time (UTC)", state.head.time[11:19], state.head.time[:10], delta_color="off",
                 delta_arrow="off")
    st.markdown("Head hash")
    st.code(state.head.hash, language=None)
    if state.problem is not None:
        st.error(f"This site's own check of the chain fails at seq {state.problem.seq}: "
                 f"{display.plain(state.problem.message)}.", icon=":material/gpp_bad:")
    elif state.checking:
        st.info("This site is still verifying its chain from the first entry; reload in a moment.",
                icon=":material/hourglass_top:")
    elif state.verified:
        st.success(f"This site verified every entry, 1 to {state.verified_through:,}: hashes, links, no gaps. It "
                   "checks each new entry as it arrives and re-walks the whole chain every few minutes.",
                   icon=":material/verified:")

st.subheader("Receipt delay of signals", anchor=False)
st.caption("From a signal's own time to its `signal.received` entry in the ledger — the moment the signal was "
           "committed, before any candle was looked at. Live signals should take seconds; backfill (signals "
           "imported after the fact) is shown apart and never counts as live.")
delays = loaders.receipt_delays(URL, loaders.version(URL))
if not any(d.signals for d in delays):
    display.empty("No signal has been received yet.")
else:
    def seconds(value: float | None) -> str:
        if value is None:
            return "—"
        if abs(value) < 120:
            return f"{value:.1f} s"
        if abs(value) < 2 * 3600:
            return f"{value / 60:.1f} min"
        if abs(value) < 2 * 86400:
            return f"{value / 3600:.1f} h"
        return f"{value / 86400:.1f} days"

    st.dataframe(pd.DataFrame([{"origin": d.origin, "signals": d.signals, "median": seconds(d.median),
                                "95th percentile": seconds(d.p95), "max": seconds(d.max)} for d in delays]),
                 hide_index=True)

st.subheader("Checkpoints", anchor=False)
st.caption("Every 10 minutes while the ledger grows, the worker records its head (seq, hash, time), signed "
           "with the owner's Ed25519 key when one is set, and can publish it somewhere outside this server "
           "(an anchor: a public git repository, a chat channel). A published checkpoint pins the history up "
           "to it: a rewritten chain cannot contain its hash at its seq.")
points = loaders.checkpoints(URL, loaders.version(URL))
if not points:
    display.empty("No checkpoint has been recorded yet: the worker records the first one as the ledger grows.")
else:
    from shared import signing

    def signature_state(point: dict[str, object]) -> str:
        if not point.get("signature"):
            return "unsigned"
        ok = signing.signature_ok(point, str(point["signature"]), str(point.get("public_key") or ""))
        return "valid" if ok else "INVALID"

    keys = {str(p["public_key"]) for p in points if p.get("public_key")}
    rows = [{"seq": p["seq"], "time (UTC)": str(p["time"]).replace("T", " ")[:19], "hash": p["hash"],
             "signature": signature_state(p),
             "anchor": (p.get("anchor") or {}).get("status", "—") if isinstance(p.get("anchor"), dict) else "—",
             "anchor said": (p.get("anchor") or {}).get("detail") or "" if isinstance(p.get("anchor"), dict) else ""}
            for p in reversed(points)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if keys:
        st.markdown("Public key the checkpoints are signed with (check it against one the owner published "
                    "elsewhere, then pass it to `signalproof verify --public-key`):")
        for key in sorted(keys):
            st.code(key, language=None)
    st.caption("All checkpoints: `/api/v1/checkpoints` (JSON).")

st.subheader("Verify it yourself", anchor=False)
site = site_address()
head_arg = f"{state.head.seq}:{state.head.hash}" if state is not None and state.head is not None else "SEQ:HASH"
st.markdown("1. Install the verifier (from PyPI, or from this project's repository):")
st.code("pip install signalproof\n# or, from this project's repository:\npip install git+<repository URL>",
        language="bash")
st.markdown("2. Check the whole chain as this site serves it (hashes, links, no gaps; `--replay` also "
            "re-resolves every trade on the exchange's candles and recomputes the metrics):")
st.code(f"signalproof verify {site}", language="bash")
st.markdown("3. Save today's head. A later `verify` with it proves that history up to it was not rewritten "
            "since: a changed or rebuilt chain no longer contains this exact seq and hash.")
st.code(f"signalproof verify {site} --head {head_arg}", language="bash")
st.caption("The raw ledger is public too: `/api/v1/ledger?after=0&limit=1000` (JSON lines), its head at "
           "`/api/v1/head`. The hashing rule is documented so a verifier can be written in any language.")
