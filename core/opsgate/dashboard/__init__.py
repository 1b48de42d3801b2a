"""Dashboard overview counts and the merged audit feed."""
