"""Sequence readers and the synthetic RGB-thermal generator (numpy + OpenCV only, no torch)."""
# synthetic generator (training helper)
from .synthetic import (CONDITIONS, Condition, SyntheticConfig, SyntheticScene, SyntheticSequence,
                        generate_sequence, write_benchmark, write_sequence)
# sequence readers (tracking helper)
from .sequences import (IMAGE_EXTENSIONS, LAYOUTS as SEQUENCE_LAYOUTS, Frame, Sequence, SequenceFormatError, VideoPairSequence,
                        detect_layout, list_images, list_sequences, open_benchmark, open_sequence,
                        open_video_pair, read_box_file, read_rgb, read_sequence_list, read_thermal)
