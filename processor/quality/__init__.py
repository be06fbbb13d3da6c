"""Model quality from late ground truth: every call's prediction joined with its label."""
