"""The web edge shared by every feature: process state, running database work, errors as
problem+json, request limits, and the server-rendered pages' headers, cookies and CSRF.

The features (`api/`, `console/`, `oauth/`) import this package and the floors below it,
never each other; only `clubfeed.app` composes them.
"""
