"""Domain and persistence shared by the worker and the site.

Nothing here imports `worker` or the site, talks HTTP, or reads the wall clock except
`clock.utcnow` (the one place that does).
"""
