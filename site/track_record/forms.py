"""How the settings page groups and names the runtime settings (one form per group)."""

# Each form saves its group at once (all or nothing). `paused` is the kill switch, apart.
GROUPS: dict[str, tuple[str, ...]] = {
    "Trading": ("stake_usd", "entry_mode", "take_profit_target", "tp_split", "stop_after_tp", "futures_funding", "fee_rate_spot", "fee_rate_futures", "slippage_bps",
                "maintenance_margin_rate", "pending_expiry_hours", "max_trade_hours", "candle_interval",
                "starting_balance_usd"),
    "Filters": ("min_confidence", "markets", "symbols_allow", "symbols_deny", "max_open_trades",
                "one_per_symbol_side"),
    "Signal feed": ("signal_feed_url",),
    "Presentation": ("site_title", "site_description"),
}
LABELS = {
    "stake_usd": "Stake per trade (USD)", "entry_mode": "Entry mode", "take_profit_target": "Take-profit target",
    "tp_split": "Split over targets", "stop_after_tp": "Stop after a target",
    "futures_funding": "Futures pay funding",
    "fee_rate_spot": "Fee rate, spot", "fee_rate_futures": "Fee rate, futures", "slippage_bps": "Slippage (bps)",
    "maintenance_margin_rate": "Maintenance margin rate", "pending_expiry_hours": "Limit entry expiry (hours)",
    "max_trade_hours": "Maximum trade time (hours)", "candle_interval": "Candle interval",
    "starting_balance_usd": "Starting balance (USD)", "min_confidence": "Minimum confidence", "markets": "Markets",
    "symbols_allow": "Only these symbols", "symbols_deny": "Never these symbols", "max_open_trades": "Maximum open trades",
    "one_per_symbol_side": "One trade per symbol and side", "signal_feed_url": "Feed URL", "site_title": "Site title",
    "site_description": "Site description",
}
