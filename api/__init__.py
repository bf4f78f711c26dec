"""lossforge api package."""
