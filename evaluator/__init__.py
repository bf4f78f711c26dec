"""lossforge evaluator package."""
