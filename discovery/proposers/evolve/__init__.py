"""The `evolve` proposer: offline, deterministic symbolic search over loss expressions.

proposer.py   EvolveProposer: islands' parents in, mutated and crossed children out
expr.py       the expression trees;  operators.py  the edits that make children
codegen.py    a tree written as contract source;  evaluate.py  a tree run with torch
sanity.py     a cheap screen before the sandbox;  seeds.py  the baselines as trees
"""
