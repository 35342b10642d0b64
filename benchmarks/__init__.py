"""Speed measurements, each against the plain way, run side by side (`make bench`)."""
