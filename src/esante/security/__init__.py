"""Security seam: the policy decision point every interaction passes through."""
