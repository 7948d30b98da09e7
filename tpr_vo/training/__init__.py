"""TPR self-supervised training (imports torch; the CLI imports it lazily)."""
