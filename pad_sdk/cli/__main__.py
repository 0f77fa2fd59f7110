"""``python -m pad_sdk.cli``."""

from pad_sdk.cli import main

main()
