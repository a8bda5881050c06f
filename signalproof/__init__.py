"""The `signalproof` command: the composition root.

It reads the configuration once and wires the parts together: the worker service, the public
site and the offline demo. It is the only package that imports all of them; `shared/` and
`worker/` never import it.
"""
