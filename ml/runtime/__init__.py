"""The serving runtime: everything the serving process needs of `ml`, and nothing else.

Schema, the preprocessor, bundle reading and verification, scoring and the artifact store. It
imports neither pandas nor matplotlib; `service` reaches `ml` only through this package, and
the API image copies only this package of `ml`. Both rules are import-linter contracts run by
`make test` (see `.importlinter`).
"""
