"""Programs a newcomer runs: the migration demo."""
