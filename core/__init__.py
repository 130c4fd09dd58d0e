"""Small pieces every package uses: device resolution and atomic file writes."""
