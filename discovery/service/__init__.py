"""What the API and the CLI ask of lossforge, one module per question.

`leaderboard` (a campaign's ranking and whether its proxy holds), `evaluate` (one loss against DPO),
`curves` (a candidate's loss and gradient as functions of the margin), `export` (a loss as a
standalone module, re-verified), `validation` (loss source through the sandbox), `running` (what
an entry point names to run a campaign beside discovery.runner). The `api` package calls these
and nothing below them: it never imports `evaluator` or `sandbox`.

Importing this package is free; each module imports what it needs.
"""
