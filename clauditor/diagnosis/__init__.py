"""Session diagnosis: rules over a session's stored rows that explain why it was slow or dear."""
