"""lossforge sandbox package."""
