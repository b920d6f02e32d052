"""``python -m gateway ...``: re-executes into the isolated launcher (gateway/boot.py)."""

from gateway.boot import main

main()
