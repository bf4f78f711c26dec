"""lossforge discovery package."""
