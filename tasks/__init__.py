"""Thin Prefect tasks: each is one call into the fashionrec library, with the same name.

Retries, caching and concurrency are declared here, in the decorators, and nowhere else.
"""
