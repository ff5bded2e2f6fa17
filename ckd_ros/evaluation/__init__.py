"""Benchmark evaluation: run the tracker over RGBT benchmarks and score results with each official toolkit's rules."""
from .benchmarks import (GTOT, GTOT_PAPER, LASHER, RGBT210, RGBT234, RULES, VTUAV, Benchmark, BenchmarkRules,
                         SequenceTruth, get_rules, load_benchmark)
from .result_folder import ResultFolder, read_result_folder
from .scoring import ResultWarning, Score, SequenceScore, TrackerScore, score_folder, score_sequence, score_tracker

__all__ = ["Benchmark", "BenchmarkRules", "SequenceTruth", "get_rules", "load_benchmark", "RULES",
           "LASHER", "RGBT234", "RGBT210", "GTOT", "GTOT_PAPER", "VTUAV",
           "Score", "SequenceScore", "TrackerScore", "score_folder", "score_sequence", "score_tracker",
           "ResultFolder", "ResultWarning", "read_result_folder"]
