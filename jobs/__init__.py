"""Spark jobs: raw logs -> bronze -> silver -> features -> training sets. Each is transform + thin I/O."""
