"""Live model quality: the prediction log's consumer and store (labels and live metrics build on them)."""
