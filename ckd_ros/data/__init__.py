"""Sequence readers and the synthetic RGB-thermal generator (numpy + OpenCV only, no torch)."""
# synthetic generator (training helper)
from .synthetic import (CONDITIONS, Condition, SyntheticConfig, SyntheticScene, SyntheticSequence,
                        generate_sequence, write_benchmark, write_sequence)
