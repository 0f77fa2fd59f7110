"""Regenerate the committed JSON Schema: ``python -m policies._schema`` (a test fails when it is stale)."""

from policies.io import write_policy_schema

if __name__ == "__main__":
    print(write_policy_schema())
