"""The signalproof worker: signal intake, the trade monitor and the exchange client."""
