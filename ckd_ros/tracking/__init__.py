"""CKD tracking runtime: crops, decoding, thermal gain, registration, status; no ROS."""
from .geometry import CropGeometry, clip_box, crop_geometry, hann2d, map_box_back, sample_target
from .registration import Registration, RegistrationConfig, RegistrationError, load_homography
from .status import StatusConfig, StatusFilter, TrackStatus
from .thermal import ThermalGain, ThermalGainConfig, to_uint8_thermal
from .tracker import CKDTracker, LostSearchConfig, StepTiming, TrackerConfig, TrackResult
from .validation import TrackerInputError, TrackerNotInitializedError, box_problem, check_box
from .factory import CandidateElimination, TrackerSpec, build_tracker
from .session import PendingBoxError, TrackOutput, TrackSession, VelocityEstimator, camera_bearing

__all__ = [
    "CKDTracker", "TrackerConfig", "TrackResult", "TrackStatus", "StepTiming", "LostSearchConfig",
    "StatusConfig", "StatusFilter", "ThermalGain", "ThermalGainConfig", "to_uint8_thermal",
    "Registration", "RegistrationConfig", "RegistrationError", "load_homography",
    "TrackerInputError", "TrackerNotInitializedError", "check_box", "box_problem",
    "TrackerSpec", "CandidateElimination", "build_tracker",
    "TrackSession", "TrackOutput", "PendingBoxError", "VelocityEstimator", "camera_bearing",
    "CropGeometry", "crop_geometry", "sample_target", "hann2d", "map_box_back", "clip_box",
]
