"""The public site's helpers: data loading, charts and page furniture (no pages here)."""
