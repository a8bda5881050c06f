"""The site's deployment configuration, read from the environment once per process.

The pages, the loaders and the API routes all take it from here (`config()`), so a site process
builds `shared.config.Config` exactly once, whatever runs first.
"""

import functools

from shared.config import Config


@functools.cache
def config() -> Config:
    return Config()
