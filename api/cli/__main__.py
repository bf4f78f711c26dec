"""`python -m api.cli`: the `lossforge` command (how the API's launcher starts engines)."""

from api.cli import main

main(prog_name="lossforge")
