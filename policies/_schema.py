"""Regenerate the committed JSON Schema: ``python -m policies._schema`` (a test fails when it is stale)."""

import sys

from policies.io import write_policy_schema

if __name__ == "__main__":
    sys.stdout.write(f"{write_policy_schema()}\n")
