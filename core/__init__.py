"""Small pieces every package uses: device resolution, atomic file writes, state-dict keys."""
